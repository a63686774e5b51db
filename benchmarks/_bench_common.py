"""Shared by ``throughput.py`` and its member processes: the control protocol and load figures.

A member process prints one JSON object per line on stdout and reads one request per
line on stdin. Requests: ``{"op": "status"}`` → ``{"role", "term", "leader"}``;
``{"op": "cpu"}`` → ``{"cpu": seconds}`` (the process's CPU time so far, every thread;
replobj members started with ``--count-wakeups`` add ``"wakeups"``, event-loop
iterations, and ``"handles"``, callbacks run); ``{"op": "load", "kind": K,
"concurrency": C, "batch": B, "warmup": W, "duration": D}`` → a :class:`LoadFigures` as a
dict, where ``kind`` is one of :data:`KINDS`; ``{"op": "stop"}`` → ``null`` and the
process exits. Replies are ``{"ok": true, "value": ...}`` or ``{"ok": false, "error":
TEXT}``; once serving, a member prints ``{"event": "ready"}``. A member that cannot run a
kind answers ``{"ok": false, "error": "unsupported: ..."}``.
"""

from __future__ import annotations

import json
import sys
import time
import timeit
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "KINDS",
    "LOCAL_CHUNK",
    "SECRET_ENV",
    "LoadFigures",
    "LoadWindow",
    "emit",
    "free_port",
    "percentile",
    "yardstick_seconds",
]

KINDS = ("command", "read", "local", "localnow", "bulk")
"""What a load runs: commands (``incr()``), linearizable reads (``get()``), local reads
from one caller (``local``: ``await get.local()``; ``localnow``: the synchronous
``get.local_now()``, yielding to the event loop once a millisecond; PySyncObj runs its
plain method read for both), and bulk submits (``incr.many`` of ``batch`` commands, or
``batch`` callbacks in flight for PySyncObj). A member of an older tree knows fewer."""

SECRET_ENV = "REPLOBJ_BENCH_SECRET"
"""Environment variable carrying a replobj cluster's secret to its members."""

LOCAL_CHUNK = 100
"""Local reads timed together (the clock would cost as much as the read)."""


def yardstick_seconds() -> float:
    """Seconds one ``sum(range(1000))`` takes here now (best of 5): the unit CPU per call
    is expressed in, which cancels the machine's speed out of the figures."""
    return min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000


def emit(message: Any) -> None:
    """Write one protocol line on stdout."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(ordered: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of already sorted values (nearest rank); 0.0 if empty."""
    if not ordered:
        return 0.0
    rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[rank]


@dataclass(frozen=True, slots=True)
class LoadFigures:
    """What one load run measured in the client's process.

    :param calls: calls that completed inside the measured window.
    :param total_calls: calls that completed during the whole run (warm-up included): the
        divisor of the members' CPU time, which is measured around the whole run.
    :param errors: calls that failed (any time during the run).
    :param seconds: length of the measured window.
    :param p50_ms: median latency of the measured calls, milliseconds.
    :param p99_ms: 99th-percentile latency, milliseconds.
    :param cpu_share: CPU time of the client's process over wall time, for the whole run
        (1.0 = one core busy).
    """

    calls: int
    total_calls: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_share: float

    @property
    def rate(self) -> float:
        """Completed calls per second."""
        return self.calls / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (see :meth:`from_json`)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadFigures:
        """The inverse of :meth:`to_json` (also of an older member's, without
        ``total_calls``)."""
        return cls(**{"total_calls": data["calls"], **data})


class LoadWindow:
    """Collects the latencies of calls that complete inside ``[start, end)`` (perf_counter).

    Calls are started until ``end``; those finishing during the warm-up are not counted.

    :param warmup: seconds from now until the measured window opens.
    :param duration: the window's length in seconds.
    """

    def __init__(self, warmup: float, duration: float) -> None:
        self.start = time.perf_counter() + warmup
        self.end = self.start + duration
        self.latencies: list[float] = []
        self.calls = 0
        self.total_calls = 0
        self.errors = 0
        self._began = (time.perf_counter(), time.process_time())

    def open(self) -> bool:
        """Whether new calls may still be started."""
        return time.perf_counter() < self.end

    def record(self, began: float, calls: int = 1, per_call: bool = False) -> None:
        """``calls`` calls begun at ``began`` just completed: one latency sample, of them
        all (one call, or one bulk submit), or ``per_call`` (back-to-back calls timed
        together: their mean)."""
        now = time.perf_counter()
        self.total_calls += calls
        if self.start <= now < self.end:
            self.calls += calls
            self.latencies.append((now - began) / (calls if per_call else 1))

    def figures(self) -> LoadFigures:
        """Summarise once every call has finished."""
        ordered = sorted(self.latencies)
        wall = time.perf_counter() - self._began[0]
        cpu = time.process_time() - self._began[1]
        return LoadFigures(
            calls=self.calls,
            total_calls=self.total_calls,
            errors=self.errors,
            seconds=self.end - self.start,
            p50_ms=percentile(ordered, 0.50) * 1e3,
            p99_ms=percentile(ordered, 0.99) * 1e3,
            cpu_share=cpu / wall if wall > 0 else 0.0,
        )
