"""Running a snapshot's pickling or unpickling in a worker thread that never outlives its caller.

The work gets a stop flag (see :mod:`replobj.pickling`: checked every few thousand
objects). If the waiting task is cancelled (the node stops), the flag is set and the
cancellation is raised only once the thread has finished, so no thread still reads the
objects after the node stopped (a node restarted in the same process restores them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import anyio

from .errors import SnapshotAbandonedError
from .pickling import StopFlag

__all__ = ["run_stoppable"]

_T = TypeVar("_T")


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
