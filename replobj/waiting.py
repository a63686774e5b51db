"""Small anyio primitives for waiting on results and on the applied index."""

from __future__ import annotations

import heapq
from asyncio import AbstractEventLoop, Future
from asyncio import _get_running_loop as _running_asyncio_loop
from collections.abc import Awaitable
from typing import Generic, TypeAlias, TypeVar

import anyio
import anyio.lowlevel

T = TypeVar("T")
_Waiter: TypeAlias = "Future[None] | anyio.Event"


class Flag:
    """Set once; wakes the tasks waiting for it. The hot-path replacement of ``anyio.Event``.

    Nothing is allocated until a task waits while the flag is not set. On asyncio a
    waiter costs one bare future (an ``anyio.Event`` costs four objects and a lock on its
    first wait), kept without a list while it is the only one; on other backends it
    falls back to an ``anyio.Event``. A class may inherit it to be its own flag (a call
    ticket is), saving an object per call.
    """

    __slots__ = ("_waiters", "is_set")

    def __init__(self) -> None:
        self.is_set = False
        self._waiters: _Waiter | list[_Waiter] | None = None

    def set(self) -> None:
        """Set the flag and wake every waiting task (no effect if already set)."""
        if self.is_set:
            return
        self.is_set = True
        waiters, self._waiters = self._waiters, None
        if waiters is None:
            return
        if isinstance(waiters, Future):  # the usual case: one task waits
            if not waiters.done():
                waiters.set_result(None)
            return
        for waiter in waiters if isinstance(waiters, list) else (waiters,):
            if isinstance(waiter, Future):
                if not waiter.done():
                    waiter.set_result(None)
            else:
                waiter.set()

    def waiter(self) -> Awaitable[None]:
        """What to await until the flag is set: on asyncio the bare future itself, so
        the waiting task resumes through no coroutine frame of this class (the call hot
        path awaits it directly). A checkpoint if the flag is already set."""
        return self.waiter_on(_running_asyncio_loop())

    def waiter_on(self, loop: AbstractEventLoop | None) -> Awaitable[None]:
        """:meth:`waiter` when the caller knows the running asyncio loop (``None``: not
        on asyncio); asking asyncio for it costs a ``getpid`` system call on Python 3.11."""
        if self.is_set:
            return anyio.lowlevel.checkpoint()
        if loop is None:
            event = anyio.Event()
            self._add(event)
            return event.wait()
        future: Future[None] = Future(loop=loop)
        self._add(future)
        return future

    async def wait(self) -> None:
        """Return once the flag is set."""
        await self.waiter()

    def _add(self, waiter: _Waiter) -> None:
        waiters = self._waiters
        if waiters is None:
            self._waiters = waiter
        elif isinstance(waiters, list):
            waiters.append(waiter)
        else:
            self._waiters = [waiters, waiter]


class Pending(Generic[T]):
    """A value or an exception that becomes available once (an anyio-friendly future).

    Any number of tasks may wait for it; each costs one :class:`Flag` waiter.
    """

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = Flag()
        self._value: T | None = None
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        """Whether a value or an error was set."""
        return self._done.is_set

    def set(self, value: T) -> None:
        """Resolve with ``value`` (ignored if already resolved)."""
        if not self._done.is_set:
            self._value = value
            self._done.set()

    def fail(self, error: BaseException) -> None:
        """Resolve with ``error`` (ignored if already resolved)."""
        if not self._done.is_set:
            self._error = error
            self._done.set()

    async def wait(self) -> T:
        """The value, once set; raises the error if one was set (a checkpoint either way)."""
        outcome = await self.outcome()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def outcome(self) -> T | BaseException:
        """The value or the error, once set, without raising: when many tasks wait, one
        exception object raised in each would grow its traceback with every raise."""
        await self._done.wait()
        if self._error is not None:
            return self._error
        return self._value  # type: ignore[return-value]


class IndexWaiters:
    """Tasks waiting for a monotonically growing index (the applied index) to reach a value."""

    __slots__ = ("_counter", "_heap", "index")

    def __init__(self, index: int) -> None:
        self.index = index
        self._heap: list[tuple[int, int, anyio.Event]] = []
        self._counter = 0

    def advance(self, index: int) -> None:
        """The index reached ``index``: wake everyone waiting for it or less."""
        if index <= self.index:
            return
        self.index = index
        while self._heap and self._heap[0][0] <= index:
            heapq.heappop(self._heap)[2].set()

    async def wait_for(self, index: int) -> None:
        """Return once the index is at least ``index``."""
        if index <= self.index:
            return
        event = anyio.Event()
        self._counter += 1
        heapq.heappush(self._heap, (index, self._counter, event))
        await event.wait()
