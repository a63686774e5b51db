"""Proxies: what ``node.attach`` returns. Attribute access gives awaitable method proxies.

``await proxy.cmd(...)`` runs a command through the log and returns its result as
applied on this node; ``await proxy.q(...)`` runs a query after a linearizable read
barrier (ReadIndex); ``await proxy.q.local(...)`` runs it on this replica at once;
``proxy.q.local_now(...)`` does too, as a plain call that never yields.
``await proxy.cmd.indexed(...)`` returns the result with the log index it was applied at
(:class:`Indexed`), for ``await node.wait_applied(index)`` on another member.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from time import monotonic as _monotonic
from typing import TYPE_CHECKING, Any, NoReturn

from . import errors
from .command import Command, CommandOutcome, has_immutable_arguments
from .entry_context import _current as _current_entry
from .entry_context import run_in_entry
from .local_now import make_local_now
from .replicated import ObjectSpec

if TYPE_CHECKING:
    from .node import Node

__all__ = ["CommandMethod", "Indexed", "ObjectProxy", "QueryMethod"]


@dataclass(frozen=True, slots=True)
class Indexed:
    """What ``await proxy.cmd.indexed(...)`` returns: the command's result and the index
    of the log entry it was applied from.

    ``await node.wait_applied(index)`` on any member, then a local read there, sees the
    command's effect (read-your-writes without a linearizable read). Unpack it as
    ``value, index = await kv.set.indexed("k", 1)``.
    """

    value: Any
    """What the command returned (as applied on the calling member)."""
    index: int
    """The index of the entry the command was applied from. Calls made together share an
    entry and so an index. If a retry after a leader change found the command applied
    already, it is the retry's entry: later than the first, so still enough to wait for."""

    def __iter__(self) -> Iterator[Any]:
        """``value, index = indexed``."""
        return iter((self.value, self.index))


class ObjectProxy:
    """Stands for an attached object; its public methods become awaitable calls.

    A method's proxy is made on first use and kept in the instance ``__dict__``, where
    every later ``proxy.method`` finds it as a plain attribute: ``__getattr__`` runs only
    after a failed lookup, which costs about a microsecond (more than a local read).
    """

    __slots__ = ("__dict__", "_name", "_node", "_obj", "_spec")

    def __init__(self, node: Node, name: str, obj: object, spec: ObjectSpec) -> None:
        self._node = node
        self._name = name
        self._obj = obj
        self._spec = spec

    def __getattr__(self, method: str) -> CommandMethod | QueryMethod:
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
        self.__dict__[method] = found
        return found

    def __setattr__(self, name: str, value: object) -> None:
        if name not in ObjectProxy.__slots__:
            raise AttributeError(
                f"cannot set {name!r} on the proxy of {self._name!r}: a proxy stands for the "
                "replicated object; change the object's state through its commands"
            )
        object.__setattr__(self, name, value)

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
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        timeout: float | None = None,
        nowait: bool = False,
    ) -> Any:
        """Like calling the proxy, with an explicit ``timeout`` in seconds.

        :param nowait: when the node is at its ``max_pending_calls`` bound, raise
            :class:`~replobj.errors.TooManyPendingCallsError` at once instead of waiting
            for room.
        :raises ~replobj.errors.TooManyPendingCallsError: see ``nowait`` (nothing sent).
        :raises ~replobj.errors.CallTimeoutError: if it did not complete in time (the wait
            for room included).
        """
        node = self._node
        node.runtime  # noqa: B018 - fail fast with NodeStoppedError
        node.check_object(self._name)
        if not node._room.has_room(len(node._in_flight), 1):
            timeout = await node.make_room(1, timeout, nowait)
        cmd, payload = node.new_command(
            self._name, self._spec.class_name, self._method, args, kwargs
        )
        local = cmd if has_immutable_arguments(cmd) else None
        outcome = await node.call_command(cmd, payload, timeout, local)
        return outcome.result()

    async def indexed(self, *args: Any, **kwargs: Any) -> Indexed:
        """Run the command as a call does, and return its result with the log index it was
        applied from (:class:`Indexed`): for ``await node.wait_applied(index)`` on another
        member before a local read there.

        :raises ~replobj.errors.UnpicklableArgumentError: before anything is sent.
        :raises ~replobj.errors.CallTimeoutError: if it did not complete in time.
        :raises Exception: what the command raised.
        """
        node = self._node
        node.runtime  # noqa: B018 - fail fast with NodeStoppedError
        node.check_object(self._name)
        timeout = None
        if not node._room.has_room(len(node._in_flight), 1):
            timeout = await node.make_room(1, None, False)
        cmd, payload = node.new_command(
            self._name, self._spec.class_name, self._method, args, kwargs
        )
        local = cmd if has_immutable_arguments(cmd) else None
        outcome, index = await node.call_command_at(cmd, payload, timeout, local)
        return Indexed(outcome.result(), index)

    async def many(
        self,
        *arguments: Iterable[Any],
        timeout: float | None = None,
        return_exceptions: bool = False,
        nowait: bool = False,
    ) -> list[Any]:
        """Run the command once per set of arguments, all behind one awaitable, like
        :func:`map`: ``await kv.set.many(keys, values)`` calls ``set(keys[i], values[i])``
        for every ``i``, in that order, and returns the results in that order.

        The commands are submitted together, so they share log entries, fsyncs and
        messages: a bulk load costs a fraction of as many single calls. Each is a command
        of its own: it applies exactly once, also when a leader change makes it retry,
        and sees its own :func:`~replobj.current_entry`. A command that raises does not
        stop the others: every command is applied (or timed out) before this returns.

        :param arguments: one iterable per positional parameter, all of the same length.
        :param timeout: seconds for the whole batch (default: the node's ``call_timeout``).
        :param return_exceptions: put each command's exception (the one it raised, or
            its :class:`~replobj.errors.CallTimeoutError`) in its place in the list
            instead of raising the first one once all are done.
        :param nowait: raise :class:`~replobj.errors.TooManyPendingCallsError` at once
            instead of waiting for room when the batch does not fit under the node's
            ``max_pending_calls`` now (a batch larger than the bound waits until nothing
            else is in flight).
        :raises ~replobj.errors.TooManyPendingCallsError: see ``nowait`` (nothing sent).
        :raises ~replobj.errors.ConfigurationError: if the iterables differ in length or
            none is given (nothing was sent).
        :raises ~replobj.errors.UnpicklableArgumentError: before anything is sent.
        :raises ~replobj.errors.CallTimeoutError: for the first command (in order) that
            did not complete in time, unless ``return_exceptions``.
        :raises Exception: the first exception a command raised, unless
            ``return_exceptions``.
        """
        node = self._node
        node.runtime  # noqa: B018 - fail fast with NodeStoppedError
        node.check_object(self._name)
        calls = _zip_arguments(self._method, arguments)
        if not calls:
            await node.fair_checkpoint()
            return []
        if not node._room.has_room(len(node._in_flight), len(calls)):
            timeout = await node.make_room(len(calls), timeout, nowait)
        cmds: list[Command] = []
        payloads: list[bytes] = []
        local: list[Command | None] = []
        try:
            for args in calls:
                cmd, payload = node.new_command(
                    self._name, self._spec.class_name, self._method, args, {}
                )
                cmds.append(cmd)
                payloads.append(payload)
                local.append(cmd if has_immutable_arguments(cmd) else None)
        except BaseException:
            for cmd in cmds:
                node.finish_command(cmd.seq)
            raise
        outcomes = await node.call_commands(cmds, payloads, timeout, local)
        return _results(outcomes, return_exceptions)


def _zip_arguments(method: str, arguments: tuple[Iterable[Any], ...]) -> list[tuple[Any, ...]]:
    """The argument tuples of :meth:`CommandMethod.many`."""
    columns = [list(column) for column in arguments]
    lengths = {len(column) for column in columns}
    if len(lengths) != 1:
        raise errors.ConfigurationError(
            f"{method}.many() takes one iterable per positional parameter, all of the same "
            f"length; got {len(columns)} of lengths {[len(c) for c in columns]}"
        )
    return list(zip(*columns, strict=True))


def _results(
    outcomes: list[CommandOutcome | errors.CallTimeoutError], return_exceptions: bool
) -> list[Any]:
    results: list[Any] = []
    first_error: BaseException | None = None
    for outcome in outcomes:
        error = outcome if isinstance(outcome, BaseException) else outcome.error
        if error is not None:
            first_error = first_error or error
            results.append(error)
        else:
            assert isinstance(outcome, CommandOutcome)
            results.append(outcome.value)
    if first_error is not None and not return_exceptions:
        raise first_error
    return results


class QueryMethod:
    """``await proxy.query(...)`` (linearizable), ``await proxy.query.local(...)`` or
    ``proxy.query.local_now(...)`` (this replica, at once)."""

    __slots__ = ("_bound", "_current_entry", "_method", "_name", "_node", "_obj", "local_now")

    local_now: Callable[..., Any]
    """``proxy.query.local_now(*args, **kwargs)``: the query's result on this replica's
    current state, at once, as a plain call (not a coroutine): it never yields and never
    waits. It makes the checks :meth:`local` makes and runs the query outside any current
    entry as :meth:`local` does; where :meth:`local` would wait (the first read after a
    (re)start, see :meth:`~replobj.node.Node.local_read_ready`) it raises
    :class:`~replobj.errors.LocalReadNotReadyError`. A loop of these calls never yields
    to the event loop: inside a loop, ``await ...local(...)`` or yield yourself now and
    then, or the node's heartbeats stop. Call it only on the node's event-loop thread.
    It has the query's own parameters (see :mod:`replobj.local_now`).

    :raises ~replobj.errors.NodeStoppedError: if the node is not running.
    :raises ~replobj.errors.ClassMismatchError: if this replica of the object diverged.
    :raises ~replobj.errors.LocalReadNotReadyError: after a (re)start, until one local
        read (or ``node.local_read_ready()``) has caught this replica up.
    """

    def __init__(self, node: Node, name: str, method: str, obj: object) -> None:
        self._node = node
        self._name = name
        self._method = method
        self._obj = obj
        # The attached instance never changes (a snapshot restores its state in place).
        self._bound = getattr(obj, method)
        self._current_entry = _current_entry.get
        self.local_now = make_local_now(node, name, method, self._bound)

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the query once this replica has applied every earlier committed write."""
        self._node.check_object(self._name)
        await self._node.read_barrier()
        return self._node.statemachine.run_query(self._name, self._method, args, kwargs)

    def indexed(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Not for queries: they enter no log entry, so they have no index.

        :raises ~replobj.errors.NotACommandError: always; for read-your-writes, call
            ``indexed`` on the command and ``node.wait_applied(index)`` before this read.
        """
        raise errors.NotACommandError(
            f"{self._method} is a query: it enters no log entry, so it has no .indexed(); "
            "call .indexed() on the command that writes, then await node.wait_applied(index) "
            "before reading here"
        )

    async def local(self, *args: Any, **kwargs: Any) -> Any:
        """Run the query on this replica's current state: no round-trip, maybe stale.

        Close to a method call: it yields to the event loop only when a millisecond
        passed since a call of this node last did, so a loop of local reads still lets
        the node send its heartbeats (see :meth:`~replobj.node.Node.fair_checkpoint`).

        :raises ~replobj.errors.NodeStoppedError: if the node is not running.
        :raises ~replobj.errors.ClassMismatchError: if this replica of the object diverged.
        """
        node = self._node
        # node.local_read_waits() and check_object(), inlined: this is the whole cost of
        # a local read besides the await and the method itself.
        if (
            node._runtime is None
            or node._restarted
            or _monotonic() >= node._local_due
            or node.diverged
        ):
            node.check_object(self._name)
            if node.local_read_waits():
                await node.local_read_ready()
        if self._current_entry() is None:  # run_outside_entry(), inlined
            return self._bound(*args, **kwargs)
        return run_in_entry(None, self._bound, args, kwargs)
