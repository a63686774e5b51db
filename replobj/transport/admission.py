"""Admission of incoming connections before they prove anything: a global and a per-source cap.

A connection that has not finished the handshake costs the listener a task and, once its
hello arrives, a key-exchange computation. The global cap bounds the total; the per-source
cap keeps one address (one misbehaving host, or one attacker) from taking every slot, so
real peers from other addresses still get in.
"""

from __future__ import annotations

__all__ = ["PendingHandshakes"]


class PendingHandshakes:
    """Counts connections mid-handshake, in total and per source host."""

    __slots__ = ("_by_source", "_max_per_source", "_max_total", "_total")

    def __init__(self, max_total: int, max_per_source: int) -> None:
        self._max_total = max_total
        self._max_per_source = max_per_source
        self._total = 0
        self._by_source: dict[str, int] = {}

    @property
    def total(self) -> int:
        """Connections mid-handshake now."""
        return self._total

    def admit(self, source: str) -> str | None:
        """Take a slot for ``source``; return why not (for the log) if none is free."""
        if self._total >= self._max_total:
            return f"{self._total} handshakes pending in total"
        held = self._by_source.get(source, 0)
        if held >= self._max_per_source:
            return f"{held} handshakes pending from {source}"
        self._total += 1
        self._by_source[source] = held + 1
        return None

    def release(self, source: str) -> None:
        """Give back the slot :meth:`admit` took for ``source``."""
        self._total -= 1
        held = self._by_source[source] - 1
        if held:
            self._by_source[source] = held
        else:
            del self._by_source[source]
