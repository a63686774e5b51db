"""One PySyncObj member for ``throughput.py``: a ``SyncObj`` with a ``@replicated`` counter.

Speaks the JSON-lines protocol of :mod:`_bench_common`. The log is PySyncObj's file
journal (``journalFile``) and compaction dumps go to ``fullDumpFile``, both in the
member's data directory. A ``load`` request keeps ``concurrency`` calls in flight from
this process with PySyncObj's callback API: each completed call starts the next one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from functools import partial
from typing import Any

from _bench_common import LoadWindow, emit
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated  # type: ignore[import-untyped]


class Counter(SyncObj):  # type: ignore[misc]
    """The benchmarked object: one integer, replicated by PySyncObj."""

    def __init__(self, self_address: str, partners: list[str], conf: SyncObjConf) -> None:
        super().__init__(self_address, partners, conf)
        self.value = 0

    @replicated  # type: ignore[untyped-decorator]
    def incr(self, n: int = 1) -> int:
        """Add ``n``; returns the new value."""
        self.value += n
        return self.value


def run_load(counter: Counter, concurrency: int, warmup: float, duration: float) -> Any:
    """Keep ``concurrency`` calls in flight until the window closes; wait for the rest."""
    window = LoadWindow(warmup, duration)
    lock = threading.Lock()
    outstanding = concurrency
    finished = threading.Event()

    def done(began: float, _result: object, error: int) -> None:
        nonlocal outstanding
        if error == FAIL_REASON.SUCCESS:
            window.record(began)
        else:
            window.errors += 1
        if window.open():
            start()
            return
        with lock:
            outstanding -= 1
            if outstanding == 0:
                finished.set()

    def start() -> None:
        began = time.perf_counter()
        counter.incr(callback=partial(done, began))

    for _ in range(concurrency):
        start()
    if not finished.wait(warmup + duration + 60):
        raise TimeoutError(f"{outstanding} calls still in flight a minute after the window")
    return window.figures().to_json()


def main() -> None:
    """Start the member and answer control requests until ``stop`` or end of stdin."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--id", required=True)
    parser.add_argument("--peers", required=True, help="id=host:port,...")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--append-period", type=float, default=0.1, help="appendEntriesPeriod")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    peers = dict(item.split("=", 1) for item in args.peers.split(","))
    conf = SyncObjConf(
        journalFile=os.path.join(args.data_dir, "journal"),
        fullDumpFile=os.path.join(args.data_dir, "dump"),
        appendEntriesPeriod=args.append_period,
    )
    os.makedirs(args.data_dir, exist_ok=True)
    me = peers[args.id]
    counter = Counter(me, [a for n, a in peers.items() if n != args.id], conf)
    counter.waitBinded()
    emit({"event": "ready"})
    try:
        for line in sys.stdin:
            request = json.loads(line)
            op = request["op"]
            try:
                if op == "stop":
                    emit({"ok": True, "value": None})
                    break
                if op == "status":
                    status = counter.getStatus()
                    leader = status["leader"]
                    name = {a: n for n, a in peers.items()}.get(str(leader)) if leader else None
                    role = {0: "follower", 1: "candidate", 2: "leader"}[status["state"]]
                    value = {"role": role, "term": status["raft_term"], "leader": name}
                elif op == "load":
                    value = run_load(
                        counter, request["concurrency"], request["warmup"], request["duration"]
                    )
                else:
                    raise ValueError(f"unknown op {op!r}")
                emit({"ok": True, "value": value})
            except Exception as exc:  # every failure goes back to the parent
                emit({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        counter.destroy_synchronous()


if __name__ == "__main__":
    main()
