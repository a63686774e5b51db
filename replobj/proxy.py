"""Proxies: what ``node.attach`` returns. Attribute access gives awaitable method proxies.

``await proxy.cmd(...)`` runs a command through the log and returns its result as
applied on this node; ``await proxy.q(...)`` runs a query after a linearizable read
barrier (ReadIndex); ``await proxy.q.local(...)`` runs it on this replica at once.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from . import errors
from .command import has_immutable_arguments
from .entry_context import run_in_entry
from .replicated import ObjectSpec

if TYPE_CHECKING:
    from .node import Node

__all__ = ["CommandMethod", "ObjectProxy", "QueryMethod"]


class ObjectProxy:
    """Stands for an attached object; its public methods become awaitable calls."""

    __slots__ = ("_methods", "_name", "_node", "_obj", "_spec")

    def __init__(self, node: Node, name: str, obj: object, spec: ObjectSpec) -> None:
        self._node = node
        self._name = name
        self._obj = obj
        self._spec = spec
        self._methods: dict[str, CommandMethod | QueryMethod] = {}

    def __getattr__(self, method: str) -> CommandMethod | QueryMethod:
        known = self._methods.get(method)
        if known is not None:
            return known
        spec = self._spec
        found: CommandMethod | QueryMethod
        if spec.is_command(method):
            found = CommandMethod(self._node, self._name, spec, method)
        elif spec.is_query(method):
            found = QueryMethod(self._node, self._name, method, self._obj)
        else:
            raise errors.UnknownMethodError(
                f"{spec.class_name} has no command or query {method!r} "
                f"(commands: {sorted(spec.commands)}, queries: {sorted(spec.queries)})"
            )
        self._methods[method] = found
        return found

    def __repr__(self) -> str:
        return f"<replicated {self._spec.class_name} {self._name!r} on node {self._node.id!r}>"


class CommandMethod:
    """``await proxy.method(...)``: replicate the call, return its result on this node."""

    __slots__ = ("_method", "_name", "_node", "_spec")

    def __init__(self, node: Node, name: str, spec: ObjectSpec, method: str) -> None:
        self._node = node
        self._name = name
        self._spec = spec
        self._method = method

    def __call__(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        """Run the command on every replica; raise what it raised, return what it returned.

        :raises ~replobj.errors.UnpicklableArgumentError: before anything is sent.
        :raises ~replobj.errors.CallTimeoutError: if it did not complete in time.
        """
        return self.call(args, kwargs)

    async def call(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], *, timeout: float | None = None
    ) -> Any:
        """Like calling the proxy, with an explicit ``timeout`` in seconds."""
        node = self._node
        node.runtime  # noqa: B018 - fail fast with NodeStoppedError
        node.check_object(self._name)
        cmd, payload = node.new_command(
            self._name, self._spec.class_name, self._method, args, kwargs
        )
        local = cmd if has_immutable_arguments(cmd) else None
        outcome = await node.call_command(cmd, payload, timeout, local)
        return outcome.result()


class QueryMethod:
    """``await proxy.query(...)`` (linearizable) or ``await proxy.query.local(...)``."""

    __slots__ = ("_method", "_name", "_node", "_obj")

    def __init__(self, node: Node, name: str, method: str, obj: object) -> None:
        self._node = node
        self._name = name
        self._method = method
        self._obj = obj

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the query once this replica has applied every earlier committed write."""
        self._node.check_object(self._name)
        await self._node.read_barrier()
        return self._node.statemachine.run_query(self._name, self._method, args, kwargs)

    async def local(self, *args: Any, **kwargs: Any) -> Any:
        """Run the query on this replica's current state: no round-trip, maybe stale.

        Close to a method call: it yields to the event loop only when a millisecond
        passed since a call of this node last did, so a loop of local reads still lets
        the node send its heartbeats (see :meth:`~replobj.node.Node.fair_checkpoint`).

        :raises ~replobj.errors.NodeStoppedError: if the node is not running.
        :raises ~replobj.errors.ClassMismatchError: if this replica of the object diverged.
        """
        node = self._node
        if node.diverged:
            node.check_object(self._name)
        if node.local_read_waits():
            await node.local_read_ready()
        # The attached instance never changes (a snapshot restores its state in place).
        return run_in_entry(None, getattr(self._obj, self._method), args, kwargs)
