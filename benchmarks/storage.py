"""Synced append and snapshot-chunk throughput of the RocksDB store vs the disk's raw fsync rate.

Run from the repository root (``replobj-rocksdb`` installed)::

    .venv/bin/python benchmarks/storage.py [--dir DIR] [--seconds 2]

Every case runs in a fresh directory under ``--dir`` (default: a temporary directory
in the current working directory, so the raw fsync floor is measured on the same disk).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from replobj.raft.types import ClusterConfig, Entry, SnapshotMeta
from replobj.storage import MemoryStorage, Storage, WriteBatch
from replobj_rocksdb import RocksDBStorage, SyncMode

PAYLOAD = b"x" * 100
CHUNK = 64 * 1024
CHUNKS_PER_SNAPSHOT = 64


@dataclass(frozen=True, slots=True)
class Result:
    """One row of the table: a case, its operation rate and per-operation latency."""

    case: str
    ops_per_s: float
    items_per_op: int
    p50_ms: float
    p99_ms: float

    @property
    def items_per_s(self) -> float:
        return self.ops_per_s * self.items_per_op


def measure(case: str, items_per_op: int, seconds: float, op: Callable[[], None]) -> Result:
    """Run ``op`` repeatedly for ``seconds`` and record each call's latency."""
    latencies: list[float] = []
    start = time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        op()
        latencies.append(time.perf_counter() - now)
    elapsed = time.perf_counter() - start
    quantiles = statistics.quantiles(latencies, n=100)
    return Result(
        case, len(latencies) / elapsed, items_per_op, quantiles[49] * 1e3, quantiles[98] * 1e3
    )


def raw_fsync(directory: Path, seconds: float) -> Result:
    fd = os.open(directory / "raw", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        return measure("raw os.write+os.fsync (100 B)", 1, seconds, lambda: _write_fsync(fd))
    finally:
        os.close(fd)


def _write_fsync(fd: int) -> None:
    os.write(fd, PAYLOAD)
    os.fsync(fd)


def appender(store: Storage, per_batch: int) -> Callable[[], None]:
    """A function that appends one synced batch of ``per_batch`` entries to ``store``."""
    next_index = store.last_index() + 1

    def append_batch() -> None:
        nonlocal next_index
        entries = [Entry(1, i, payload=PAYLOAD) for i in range(next_index, next_index + per_batch)]
        store.write(WriteBatch().append(entries))
        store.sync()
        next_index += per_batch

    return append_batch


def synced_appends(store: Storage, case: str, per_batch: int, seconds: float) -> Result:
    return measure(case, per_batch, seconds, appender(store, per_batch))


def snapshot_chunks(store: Storage, seconds: float) -> tuple[Result, Result]:
    """64 KiB chunks (not synced, like WriteSnapshotChunk) and the synced commit of each 4 MiB."""
    data = os.urandom(CHUNK)
    config = ClusterConfig(voters=frozenset({"a"}))
    chunk_latencies: list[float] = []
    commit_latencies: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        writer = store.begin_snapshot(SnapshotMeta(store.last_index(), 1, config))
        for number in range(CHUNKS_PER_SNAPSHOT):
            began = time.perf_counter()
            writer.write_chunk(number * CHUNK, data)
            chunk_latencies.append(time.perf_counter() - began)
        began = time.perf_counter()
        writer.commit()
        commit_latencies.append(time.perf_counter() - began)
    elapsed = time.perf_counter() - start
    chunk_q = statistics.quantiles(chunk_latencies, n=100)
    commit_q = (
        statistics.quantiles(commit_latencies, n=100)
        if len(commit_latencies) > 1
        else [commit_latencies[0]] * 99
    )
    chunks = Result(
        "64 KiB snapshot chunks (incl. commits)",
        len(chunk_latencies) / elapsed,
        1,
        chunk_q[49] * 1e3,
        chunk_q[98] * 1e3,
    )
    commits = Result(
        "snapshot commit (4 MiB, synced)",
        len(commit_latencies) / elapsed,
        1,
        commit_q[49] * 1e3,
        commit_q[98] * 1e3,
    )
    return chunks, commits


def gil_share(op: Callable[[], None], seconds: float = 1.0) -> float:
    """Share of its solo speed a pure-Python loop keeps while another thread runs ``op``."""

    def spin(deadline: float) -> int:
        count = 0
        while time.perf_counter() < deadline:
            count += 1
        return count

    alone = spin(time.perf_counter() + seconds)
    stop = threading.Event()

    def background() -> None:
        while not stop.is_set():
            op()

    worker = threading.Thread(target=background)
    worker.start()
    try:
        shared = spin(time.perf_counter() + seconds)
    finally:
        stop.set()
        worker.join()
    return shared / alone


def open_rocksdb(root: Path, name: str, mode: SyncMode = "flush_wal") -> RocksDBStorage:
    return RocksDBStorage(root / name, sync_mode=mode)


def run(root: Path, seconds: float) -> None:
    results: list[Result] = [raw_fsync(root, seconds)]
    stores: list[Storage] = []
    try:
        flush = open_rocksdb(root, "flush_wal")
        sync_write = open_rocksdb(root, "sync_write", "sync_write")
        batched = open_rocksdb(root, "batched")
        snapshots = open_rocksdb(root, "snapshots")
        memory = MemoryStorage()
        stores += [flush, sync_write, batched, snapshots, memory]
        results.append(synced_appends(flush, "(a) 1 entry/batch, flush_wal(True)", 1, seconds))
        results.append(synced_appends(sync_write, "(a') 1 entry/batch, sync=True", 1, seconds))
        results.append(
            synced_appends(batched, "(b) 64 entries/batch, flush_wal(True)", 64, seconds)
        )
        results.extend(snapshot_chunks(snapshots, seconds))
        results.append(
            synced_appends(memory, "MemoryStorage 1 entry/batch (reference)", 1, seconds)
        )
        flush_share = gil_share(appender(flush, 1))
        write_share = gil_share(appender(sync_write, 1))
    finally:
        for store in stores:
            store.close()
    print_table(results, flush_share, write_share)


def print_table(results: list[Result], flush_share: float, write_share: float) -> None:
    raw = results[0]
    header = f"{'case':44} {'ops/s':>9} {'items/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'vs raw':>7}"
    print(header)
    print("-" * len(header))
    for row in results:
        ratio = row.ops_per_s / raw.ops_per_s
        print(
            f"{row.case:44} {row.ops_per_s:9.0f} {row.items_per_s:10.0f} "
            f"{row.p50_ms:8.3f} {row.p99_ms:8.3f} {ratio:7.2f}"
        )
    per_entry, batched = results[1], results[3]
    print()
    print(
        f"batched / per-entry entries/s: {batched.items_per_s / per_entry.items_per_s:.1f}x "
        "(issue asks >= 20x)"
    )
    print(
        f"per-entry synced / raw fsync: {per_entry.ops_per_s / raw.ops_per_s:.2f} "
        "(issue asks >= 0.5, i.e. within 2x)"
    )
    print(
        f"a Python thread keeps {flush_share:.0%} of its speed while another thread appends "
        f"with flush_wal(True), {write_share:.0%} with sync=True writes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="where to make temp stores")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="replobj-storage-bench-", dir=args.dir) as root:
        print(f"directory: {root}; {args.seconds:g} s per case; payload {len(PAYLOAD)} B")
        run(Path(root), args.seconds)


if __name__ == "__main__":
    main()
