"""Running an application's nodes until Ctrl-C: :func:`run`.

``anyio.run(main)`` turns Ctrl-C into a cancellation of every task and then a
``KeyboardInterrupt``: the nodes are torn down without a leader handing over, and the
interpreter prints a traceback through the event loop (about fifty lines per process).
:func:`run` catches SIGINT itself instead: it stops every node started under it the way
``aclose`` does (a leader hands leadership to a caught-up voter first), then cancels the
application, prints one line and exits with status 130 (the shell's code for Ctrl-C).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from .errors import ReplObjError
from .node_lifecycle import RUNNING_NODES, StoppableNode

__all__ = ["INTERRUPTED_EXIT_STATUS", "run"]

T = TypeVar("T")

INTERRUPTED_EXIT_STATUS = 130
"""The exit status after a Ctrl-C (128 + SIGINT), as a shell reports an interrupted command."""


def run(main: Callable[..., Awaitable[T]], *args: object, backend: str = "asyncio") -> T:
    """Run ``main(*args)`` like ``anyio.run``; Ctrl-C stops its nodes cleanly.

    On the first Ctrl-C (SIGINT) every :class:`~replobj.Node` serving under this call is
    stopped as by ``aclose`` (a leader first hands leadership over, within an election
    timeout), then ``main`` is cancelled; one line goes to stderr and the process exits
    with status 130. Errors that calls on the stopping nodes raise meanwhile are not
    reported. A second Ctrl-C cancels everything at once. Call it from the main thread
    (signals are delivered there).

    :param main: the application's async entry point; it starts its nodes itself
        (``async with node:``).
    :param args: positional arguments for ``main``.
    :param backend: the anyio backend (``"asyncio"`` or ``"trio"``).
    :returns: what ``main`` returned, when it returned before any Ctrl-C.
    :raises SystemExit: with status 130 after a Ctrl-C.
    """
    try:
        outcome = anyio.run(_until_interrupted, main, args, backend=backend)
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        (only,) = group.exceptions  # main's own error, from the task group running it
        raise only from only.__cause__
    if isinstance(outcome, _Interrupted):
        print(outcome.line(), file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED_EXIT_STATUS)
    return outcome


class _Interrupted:
    """What a Ctrl-C stopped, for the one line :func:`run` prints."""

    __slots__ = ("forced", "stopped")

    def __init__(self) -> None:
        self.stopped: list[str] = []
        self.forced = False

    def line(self) -> str:
        names = ", ".join(sorted(self.stopped))
        if self.forced:
            return f"interrupted twice: cancelled at once ({names or 'no node was running'})"
        return f"interrupted: stopped {names}" if names else "interrupted (no node was running)"


async def _until_interrupted(
    main: Callable[..., Awaitable[T]], args: tuple[object, ...]
) -> T | _Interrupted:
    nodes: set[StoppableNode] = set()
    RUNNING_NODES.set(nodes)  # this task's context: the tasks started below inherit it
    interrupted: _Interrupted | None = None
    result: list[T] = []
    with anyio.open_signal_receiver(signal.SIGINT) as signals:
        async with anyio.create_task_group() as tasks:
            application = anyio.CancelScope()

            async def body() -> None:
                with application:
                    try:
                        result.append(await main(*args))
                    except ReplObjError:
                        if interrupted is None:
                            raise
                tasks.cancel_scope.cancel()  # main is done: stop watching for signals

            async def stop_nodes() -> None:
                assert interrupted is not None
                stopping = list(nodes)
                interrupted.stopped = [str(node.id) for node in stopping]
                async with anyio.create_task_group() as closing:
                    for node in stopping:
                        closing.start_soon(node.aclose)
                application.cancel()

            tasks.start_soon(body)
            async for _ in signals:
                if interrupted is not None:  # the second Ctrl-C
                    interrupted.forced = True
                    tasks.cancel_scope.cancel()
                    break
                interrupted = _Interrupted()
                tasks.start_soon(stop_nodes)
    if interrupted is not None:
        return interrupted
    return result[0]
