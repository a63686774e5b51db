"""One long-lived thread that makes the log durable, so the event loop never waits on the disk.

The runtime writes batches (without sync) on the event loop and then asks this thread
for a sync with :meth:`StorageSyncer.request`, naming the last entry written so far.
One sync covers every batch written before it was requested (group commit); requests
made while a sync runs are merged into the next one. When the sync is done the
thread hands ``(last entry, error)`` back to the event loop with the loop's own
thread-safe "call soon" (asyncio's ``call_soon_threadsafe``, trio's
``TrioToken.run_sync_soon``): one wake-up of the loop per sync, instead of a worker
thread borrowed and returned through a future for each one.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import queue
import threading
from collections.abc import Callable
from typing import TypeAlias

import anyio
import anyio.from_thread
import anyio.lowlevel

try:
    import sniffio
except ImportError:  # pragma: no cover - anyio then assumes asyncio, which a bare callback has
    sniffio = None  # type: ignore[assignment]

from .raft.types import LogIndex
from .storage.protocol import Storage

__all__ = ["Done", "StorageSyncer", "loop_caller"]

Target: TypeAlias = tuple[LogIndex, int] | None
"""The last entry written (index, term) when a sync was requested, or ``None``."""

Done: TypeAlias = Callable[[Target, BaseException | None], None]
"""Called on the event loop once a sync finished: its target, and the error if it failed."""

_STOP = object()


def loop_caller(*, threadsafe: bool = True) -> Callable[[Callable[[], object]], object]:
    """A function that schedules a callable on the current event loop.

    Never blocks the calling thread: asyncio's ``call_soon_threadsafe`` or trio's
    ``run_sync_soon``; another anyio backend falls back to ``anyio.from_thread.run_sync``.

    :param threadsafe: callable from any thread; ``False``: only from the loop's own
        thread, which on asyncio saves the write that wakes the loop (``call_soon``).
    """
    token = anyio.lowlevel.current_token()
    native = token.native_token
    # A bare callback runs outside any task, where sniffio (so anyio's current_time,
    # Event, ...) cannot tell the library: run it in a context that names it.
    context = contextvars.copy_context()
    if sniffio is not None:
        context.run(sniffio.current_async_library_cvar.set, sniffio.current_async_library())
    if isinstance(native, asyncio.AbstractEventLoop):
        call_soon = native.call_soon_threadsafe if threadsafe else native.call_soon
        return lambda fn: call_soon(fn, context=context)
    run_sync_soon: Callable[..., object] | None = getattr(native, "run_sync_soon", None)
    if run_sync_soon is not None:
        return lambda fn: run_sync_soon(context.run, fn)
    return lambda fn: anyio.from_thread.run_sync(fn, token=token)  # pragma: no cover


class StorageSyncer:
    """Syncs ``storage`` in a thread of its own on request; see the module docstring.

    :param storage: the node's store (its ``sync`` releases the GIL while waiting).
    :param done: called on the event loop after each sync, in request order.
    :param name: the thread's name (for debuggers and py-spy).
    """

    def __init__(self, storage: Storage, done: Done, name: str) -> None:
        self._storage = storage
        self._done = done
        self._name = name
        self._requests: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._call_soon: Callable[[Callable[[], object]], object] | None = None
        self._in_flight = False
        self._wanted = False
        self._target: Target = None
        self._stopped = False

    def start(self) -> None:
        """Start the thread; call from the event loop that should receive the results."""
        self._call_soon = loop_caller()
        self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
        self._thread.start()

    def request(self, target: Target) -> None:
        """Sync everything written so far; ``target`` is the last entry written (if any)."""
        if self._stopped:
            return
        self._target = target
        if self._in_flight:
            self._wanted = True  # merged: one more sync once the running one is done
            return
        self._in_flight = True
        self._requests.put(target)

    async def stop(self) -> None:
        """Stop taking requests and wait (in a worker thread) for a running sync to end."""
        if self._stopped:
            return
        self._stopped = True
        thread = self._thread
        if thread is None:
            return
        self._requests.put(_STOP)
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(thread.join)

    def _work(self) -> None:
        call_soon = self._call_soon
        assert call_soon is not None
        while True:
            request = self._requests.get()
            if request is _STOP:
                return
            target: Target = request  # type: ignore[assignment]
            error: BaseException | None = None
            try:
                self._storage.sync()
            except BaseException as exc:  # handed to the event loop, which stops the node
                error = exc
            try:
                call_soon(functools.partial(self._finished, target, error))
            except RuntimeError:  # the event loop is closed: nobody is waiting any more
                return

    def _finished(self, target: Target, error: BaseException | None) -> None:
        self._in_flight = False
        if self._stopped:
            return
        if error is None and self._wanted:
            self._wanted = False
            self.request(self._target)
        self._done(target, error)
