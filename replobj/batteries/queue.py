"""``Queue``: a replicated first-in first-out queue.

``pop`` on an empty queue raises :class:`~replobj.errors.QueueEmptyError` rather than
returning a sentinel, so that any value (``None`` included) can be queued and an empty
queue cannot be mistaken for an item. Each item is handed to exactly one ``pop`` (retries
of one call apply once); an item popped by a consumer that crashes before using it is
gone: there is no acknowledgement or redelivery.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

from ..errors import QueueEmptyError
from ..replicated import query, replicated

__all__ = ["Queue"]

T = TypeVar("T")


@replicated(name="replobj.batteries.Queue")
class Queue(Generic[T]):
    """Items in the order they were put.

    :param name: how error messages name the queue.
    """

    def __init__(self, name: str = "the queue") -> None:
        self._name = name
        self._items: deque[T] = deque()

    def put(self, item: T) -> int:
        """Add ``item`` at the back; returns the new length."""
        self._items.append(item)
        return len(self._items)

    def pop(self) -> T:
        """Remove and return the front item.

        :raises ~replobj.errors.QueueEmptyError: if the queue is empty (nothing changes).
        """
        if not self._items:
            raise QueueEmptyError(self._name)
        return self._items.popleft()

    @query
    def peek(self) -> T:
        """The front item, left in place.

        :raises ~replobj.errors.QueueEmptyError: if the queue is empty.
        """
        if not self._items:
            raise QueueEmptyError(self._name)
        return self._items[0]

    @query
    def len(self) -> int:
        """How many items are queued."""
        return len(self._items)
