"""``BlockingNode``: the :class:`~replobj.node.Node` API for code that is not async.

The node runs on an anyio event loop in a background thread (a blocking portal);
every call crosses into that loop and blocks until it returns, so ``kv.set("x", 1)``
returns the value directly. ``kv.get.local_now()`` is refused (``WrongThreadError``):
it would read the object on the caller's thread while the loop's thread applies
commands to it; ``kv.get.local()`` reads on the loop's thread.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from . import errors
from .event_loop import backend_options
from .metrics import NodeMetrics
from .node import Node, NodeStatus
from .node_checks import check_backend
from .proxy import CommandMethod, Indexed, ObjectProxy, QueryMethod
from .raft.types import NodeId

__all__ = ["BlockingNode", "BlockingProxy"]


class BlockingNode:
    """A :class:`Node` driven from synchronous code; same arguments as :class:`Node`.

    Use as ``with BlockingNode(...) as node:`` or call :meth:`start` and :meth:`close`.
    ``backend`` picks the event loop (``"asyncio"`` or ``"trio"``); on asyncio it is
    uvloop when installed (the ``replobj[fast]`` extra; see :mod:`replobj.event_loop`).

    :raises ~replobj.errors.ConfigurationError: if ``backend`` or a parameter of
        :class:`Node` is invalid (the message names it).
    """

    def __init__(self, node_id: NodeId, *, backend: str = "asyncio", **options: Any) -> None:
        self.node = Node(node_id, **options)
        self._backend = check_backend(backend)
        self._portal_cm: Any = None
        self._portal: BlockingPortal | None = None

    def attach(self, name: str, obj: object) -> BlockingProxy:
        """Attach ``obj`` (before :meth:`start`); calls on the result block until done."""
        proxy = self.node.attach(name, obj)
        return BlockingProxy(self, proxy)

    def start(self) -> None:
        """Start the event-loop thread and the node in it.

        :raises ~replobj.errors.StorageError: if the data directory cannot be used.
        :raises ~replobj.errors.TransportError: if the listen address cannot be bound.
        :raises ~replobj.errors.NodeClosedError: if it is running already.
        """
        if self._portal is not None:  # before replacing the portal, which would stop it
            raise errors.NodeClosedError(
                f"node {self.node.id!r} is already running; close() it before starting it again"
            )
        self._portal_cm = start_blocking_portal(self._backend, backend_options(self._backend))
        self._portal = self._portal_cm.__enter__()
        try:
            self._portal.start_task(self.node.serve)
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            self._portal = None
            raise

    def close(self) -> None:
        """Stop the node (a leader hands over first) and its thread."""
        if self._portal is None:
            return
        try:
            self._portal.call(self.node.aclose)
        finally:
            self._portal_cm.__exit__(None, None, None)
            self._portal = None

    def __enter__(self) -> BlockingNode:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run ``func(*args)`` (sync or async) on the node's event loop and return its result."""
        if self._portal is None:
            raise errors.NodeStoppedError(
                f"node {self.node.id!r} is not running; use `with node:` or node.start()"
            )
        return self._portal.call(func, *args)

    def status(self) -> NodeStatus:
        """See :meth:`Node.status`."""
        return self.run(self.node.status)  # type: ignore[no-any-return]

    @property
    def is_leader(self) -> bool:
        """See :attr:`Node.is_leader`."""
        return self.status().role == "leader"

    def wait_for_leader(self, timeout: float | None = None) -> NodeId:
        """See :meth:`Node.wait_for_leader`."""
        return self.run(self.node.wait_for_leader, timeout)  # type: ignore[no-any-return]

    def add_member(self, node_id: NodeId, address: str, *, voter: bool = True) -> None:
        """See :meth:`Node.add_member`."""
        self.run(functools.partial(self.node.add_member, voter=voter), node_id, address)

    def remove_member(self, node_id: NodeId) -> None:
        """See :meth:`Node.remove_member`."""
        self.run(self.node.remove_member, node_id)

    def transfer_leadership(self, to: NodeId | None = None) -> None:
        """See :meth:`Node.transfer_leadership`."""
        self.run(self.node.transfer_leadership, to)

    def snapshot(self) -> int:
        """See :meth:`Node.snapshot`."""
        return self.run(self.node.snapshot)  # type: ignore[no-any-return]

    def metrics(self) -> NodeMetrics:
        """See :meth:`Node.metrics`."""
        return self.run(self.node.metrics)  # type: ignore[no-any-return]

    def wait_applied(self, index: int, timeout: float | None = None) -> int:
        """See :meth:`Node.wait_applied`."""
        return self.run(self.node.wait_applied, index, timeout)  # type: ignore[no-any-return]


class BlockingProxy:
    """Blocking counterpart of :class:`~replobj.proxy.ObjectProxy`."""

    __slots__ = ("_node", "_proxy")

    def __init__(self, node: BlockingNode, proxy: ObjectProxy) -> None:
        self._node = node
        self._proxy = proxy

    def __getattr__(self, method: str) -> BlockingMethod:
        return BlockingMethod(self._node, getattr(self._proxy, method))


class BlockingMethod:
    """A command or query that blocks until its result is available."""

    __slots__ = ("_method", "_node")

    def __init__(self, node: BlockingNode, method: CommandMethod | QueryMethod) -> None:
        self._node = node
        self._method = method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the call on the node's loop; return its result or raise its exception."""
        method = self._method
        return self._node.run(lambda: method(*args, **kwargs))

    def indexed(self, *args: Any, **kwargs: Any) -> Indexed:
        """For a command: its result with the log index it was applied from (see
        :meth:`CommandMethod.indexed`).

        :raises ~replobj.errors.NotACommandError: if the method is a query.
        """
        method = self._method
        if not isinstance(method, CommandMethod):
            raise errors.NotACommandError("only commands have an .indexed() form")
        return self._node.run(lambda: method.indexed(*args, **kwargs))  # type: ignore[no-any-return]

    def local(self, *args: Any, **kwargs: Any) -> Any:
        """For a query: this replica's state, no round-trip.

        :raises ~replobj.errors.NotAQueryError: if the method is a command.
        """
        method = self._method
        if not isinstance(method, QueryMethod):
            raise errors.NotAQueryError("only queries have a .local() form")
        return self._node.run(lambda: method.local(*args, **kwargs))

    def local_now(self, *args: Any, **kwargs: Any) -> Any:
        """Not offered here: use :meth:`local`.

        ``proxy.query.local_now()`` reads the object directly, on the calling thread. A
        ``BlockingNode``'s objects live on its event-loop thread, where commands are
        applied; read from this thread, a query could see a command half applied. A
        blocking caller needs that thread hop, which :meth:`local` makes.

        :raises ~replobj.errors.NotAQueryError: if the method is a command.
        :raises ~replobj.errors.WrongThreadError: for a query, always.
        """
        method = self._method
        if not isinstance(method, QueryMethod):
            raise errors.NotAQueryError("only queries have a .local_now() form")
        raise errors.WrongThreadError(
            f"{method._method}.local_now() reads the object on the calling thread, but a "
            "BlockingNode's objects live on its event-loop thread (a read from here could see "
            f"a command half applied); call {method._method}.local(...) instead, which runs "
            "the read on that thread"
        )
