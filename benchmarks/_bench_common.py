"""Shared by ``throughput.py`` and its member processes: the control protocol and load figures.

A member process prints one JSON object per line on stdout and reads one request per
line on stdin. Requests: ``{"op": "status"}`` → ``{"role", "term", "leader"}``;
``{"op": "load", "concurrency": C, "warmup": W, "duration": D}`` → a :class:`LoadFigures`
as a dict; ``{"op": "stop"}`` → ``null`` and the process exits. Replies are
``{"ok": true, "value": ...}`` or ``{"ok": false, "error": TEXT}``; once serving, a
member prints ``{"event": "ready"}``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["LoadFigures", "LoadWindow", "emit", "free_port", "percentile"]


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
    :param errors: calls that failed (any time during the run).
    :param seconds: length of the measured window.
    :param p50_ms: median latency of the measured calls, milliseconds.
    :param p99_ms: 99th-percentile latency, milliseconds.
    :param cpu_share: CPU time of the client's process over wall time, for the whole run
        (1.0 = one core busy).
    """

    calls: int
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
        """The inverse of :meth:`to_json`."""
        return cls(**data)


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
        self.errors = 0
        self._began = (time.perf_counter(), time.process_time())

    def open(self) -> bool:
        """Whether new calls may still be started."""
        return time.perf_counter() < self.end

    def record(self, began: float) -> None:
        """A call begun at ``began`` just completed."""
        now = time.perf_counter()
        if self.start <= now < self.end:
            self.latencies.append(now - began)

    def figures(self) -> LoadFigures:
        """Summarise once every call has finished."""
        ordered = sorted(self.latencies)
        wall = time.perf_counter() - self._began[0]
        cpu = time.process_time() - self._began[1]
        return LoadFigures(
            calls=len(ordered),
            errors=self.errors,
            seconds=self.end - self.start,
            p50_ms=percentile(ordered, 0.50) * 1e3,
            p99_ms=percentile(ordered, 0.99) * 1e3,
            cpu_share=cpu / wall if wall > 0 else 0.0,
        )
