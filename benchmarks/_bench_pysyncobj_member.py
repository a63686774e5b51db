"""One PySyncObj member for ``throughput.py``: a ``SyncObj`` with a ``@replicated`` counter.

Speaks the JSON-lines protocol of :mod:`_bench_common`. The log is PySyncObj's file
journal (``journalFile``) and compaction dumps go to ``fullDumpFile``, both in the
member's data directory. A ``command`` load keeps ``concurrency`` calls in flight from
this process with PySyncObj's callback API: each completed call starts the next one. A
``local`` (or ``localnow``) load reads the counter through a plain (not replicated)
method from one caller; a ``bulk`` load starts ``batch`` calls with callbacks, waits
for them all, and repeats. PySyncObj has no linearizable read: ``read`` is unsupported.
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

from _bench_common import LOCAL_CHUNK, LoadWindow, emit
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

    def get(self) -> int:
        """The value, read on this replica (a plain method: PySyncObj's local read)."""
        return self.value


def run_load(counter: Counter, request: dict[str, Any]) -> Any:
    """Run the ``kind`` of load the request names."""
    kind, warmup, duration = request["kind"], request["warmup"], request["duration"]
    if kind == "command":
        return run_commands(counter, request["concurrency"], warmup, duration)
    if kind in ("local", "localnow"):
        return run_local_reads(counter, warmup, duration)
    if kind == "bulk":
        return run_bulk(counter, request["batch"], warmup, duration)
    raise ValueError(f"unsupported: PySyncObj has no {kind!r} calls")


def run_local_reads(counter: Counter, warmup: float, duration: float) -> Any:
    """One caller reading the counter back to back."""
    window = LoadWindow(warmup, duration)
    get = counter.get
    while window.open():
        began = time.perf_counter()
        for _ in range(LOCAL_CHUNK):
            get()
        window.record(began, LOCAL_CHUNK, per_call=True)
    return window.figures().to_json()


def run_bulk(counter: Counter, batch: int, warmup: float, duration: float) -> Any:
    """Start ``batch`` calls, wait for all of them, repeat."""
    window = LoadWindow(warmup, duration)
    while window.open():
        began = time.perf_counter()
        failed = _one_bulk(counter, batch)
        window.errors += failed
        window.record(began, batch - failed)
    return window.figures().to_json()


def _one_bulk(counter: Counter, batch: int) -> int:
    """Start ``batch`` calls and wait for them all; returns how many failed."""
    left, failed = batch, 0
    lock = threading.Lock()
    finished = threading.Event()

    def done(_result: object, error: int) -> None:
        nonlocal left, failed
        with lock:
            failed += error != FAIL_REASON.SUCCESS
            left -= 1
            if left == 0:
                finished.set()

    for _ in range(batch):
        counter.incr(callback=done)
    if not finished.wait(60):
        raise TimeoutError(f"{left} of {batch} calls unanswered after a minute")
    return failed


def run_commands(counter: Counter, concurrency: int, warmup: float, duration: float) -> Any:
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
    parser.add_argument("--no-batch", action="store_true", help="appendEntriesUseBatch=False")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    peers = dict(item.split("=", 1) for item in args.peers.split(","))
    conf = SyncObjConf(
        journalFile=os.path.join(args.data_dir, "journal"),
        fullDumpFile=os.path.join(args.data_dir, "dump"),
        appendEntriesPeriod=args.append_period,
        appendEntriesUseBatch=not args.no_batch,
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
                elif op == "cpu":
                    times = os.times()
                    value = {"cpu": time.process_time(), "user": times.user, "sys": times.system}
                elif op == "load":
                    value = run_load(counter, request)
                else:
                    raise ValueError(f"unknown op {op!r}")
                emit({"ok": True, "value": value})
            except Exception as exc:  # every failure goes back to the parent
                emit({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        counter.destroy_synchronous()


if __name__ == "__main__":
    main()
