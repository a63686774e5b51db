"""Running a snapshot's pickling or unpickling in a worker thread that never outlives its caller.

The work gets a stop flag (see :mod:`replobj.pickling`: checked every few thousand
objects). If the waiting task is cancelled (the node stops), the flag is set and the
cancellation is raised only once the thread has finished, so no thread still reads the
objects after the node stopped (a node restarted in the same process restores them).

While such work runs, the interpreter's thread switch interval is lowered to
:data:`SWITCH_INTERVAL` (and put back once the last such work ends). The event loop
gives the GIL away at every system call that may block (``select``, ``send``,
``recv``) and, while the worker holds it, gets it back only after a switch interval:
5 ms by default, so a loop iteration that sends and receives a few messages waited
tens of milliseconds (measured: heartbeat gaps up to 0.22 s during a 1M-key snapshot
on a loaded 2-core machine, 0.10-0.12 s with 0.5 ms; ``docs/performance.md``).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import anyio

from .errors import SnapshotAbandonedError
from .pickling import StopFlag

__all__ = ["SWITCH_INTERVAL", "run_stoppable"]

_T = TypeVar("_T")

SWITCH_INTERVAL = 0.0005
"""Seconds between forced GIL hand-overs while snapshot work runs (the default is 0.005)."""

_switching = threading.Lock()
_running = 0
"""Snapshot works running in this process (nodes in one process may overlap)."""
_saved_interval = 0.0


@contextlib.contextmanager
def _quick_switches() -> Iterator[None]:
    """Lower the switch interval while at least one snapshot work runs."""
    global _running, _saved_interval
    with _switching:
        if _running == 0:
            _saved_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_saved_interval, SWITCH_INTERVAL))
        _running += 1
    try:
        yield
    finally:
        with _switching:
            _running -= 1
            if _running == 0:
                sys.setswitchinterval(_saved_interval)


async def run_stoppable(work: Callable[[StopFlag], _T]) -> _T:
    """``work(stop)`` in a worker thread; the event loop runs meanwhile.

    :returns: what ``work`` returns.
    :raises Exception: what ``work`` raises.
    :raises anyio.get_cancelled_exc_class(): if cancelled, once ``work`` has stopped.
    """
    stop = threading.Event()
    started = threading.Event()
    finished = threading.Event()

    def call() -> _T:
        started.set()
        try:
            if stop.is_set():  # cancelled before the thread began: it must not begin
                raise SnapshotAbandonedError("cancelled before it started")
            with _quick_switches():
                return work(stop)
        finally:
            finished.set()

    try:
        return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        stop.set()
        if started.is_set():  # else it sees ``stop`` when it begins
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(finished.wait)
        raise
