"""Small anyio primitives for waiting on results and on the applied index."""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


class Pending(Generic[T]):
    """A value or an exception that becomes available once (an anyio-friendly future)."""

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = anyio.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        """Whether a value or an error was set."""
        return self._done.is_set()

    def set(self, value: T) -> None:
        """Resolve with ``value`` (ignored if already resolved)."""
        if not self._done.is_set():
            self._value = value
            self._done.set()

    def fail(self, error: BaseException) -> None:
        """Resolve with ``error`` (ignored if already resolved)."""
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def wait(self) -> T:
        """The value, once set; raises the error if one was set."""
        await self._done.wait()
        if self._error is not None:
            raise self._error
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
