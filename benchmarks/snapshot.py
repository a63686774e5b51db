"""What a snapshot of a large state costs, and how long it keeps heartbeats from leaving.

Two measurements:

``--sizes`` (the default): for flat ``str -> int`` tables of growing size, the bytes and
seconds of ``StateMachine.snapshot()`` and of restoring it, and that time as a share of
the default election timeout (RAFT-PITFALLS 24).

``--cluster``: three in-process nodes over TCP, each on RocksDB in a temporary
directory, all with the same table of ``--keys`` rows (built at attach time, as every
replica's initial state). The leader is asked for ``await node.snapshot()``; meanwhile
every ``AppendEntries`` the leader sends (with no load, only heartbeats) is timestamped
(``wrap_transport``), and a task on the event loop ticks every 5 ms. It prints, per run,
the snapshot's bytes, the seconds spent pickling (``StateMachine.snapshot``) and the
whole call, the longest gap between two heartbeats to one follower that overlaps the
call, the heartbeat interval, the longest gap of the ticker, and the longest heartbeat
gap of an idle second before (the baseline). ``--tree`` runs another source tree (say,
the commit before snapshots left the event loop) with this same script: the "before"
rows. The three nodes share one event loop and one GIL, the worst case for a worker
thread competing with the loop.

``--install``: what a follower does with a received snapshot of ``--keys`` rows, as its
runtime does it (check it by decoding it into fresh objects, then restore the live ones;
the storage commit, in a worker thread in both versions, is left out), with the 5 ms
ticker on the loop: seconds taken and the longest gap of the loop (the live table it
replaces has ``--keys`` rows too: freeing it is part of the restore).

    .venv/bin/python benchmarks/snapshot.py [--sizes 100000,1000000]
    .venv/bin/python benchmarks/snapshot.py --cluster [--keys 1000000] [--runs 3]
        [--backend asyncio|trio] [--tree DIR] [--label NAME]
    .venv/bin/python benchmarks/snapshot.py --install [--keys 1000000] [--runs 3] [--tree DIR]
"""

from __future__ import annotations

import argparse
import functools
import gc
import itertools
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _use_tree(argv: list[str]) -> Path:
    """Import replobj (and its RocksDB backend) from ``--tree`` (default: this checkout)."""
    tree = HERE.parent
    if "--tree" in argv:
        tree = Path(argv[argv.index("--tree") + 1]).resolve()
    sys.path[:0] = [str(tree), str(tree / "backends" / "rocksdb")]
    return tree


TREE = _use_tree(sys.argv)

import anyio  # noqa: E402

import replobj  # noqa: E402
from replobj.runtime import RuntimeOptions  # noqa: E402
from replobj.statemachine import StateMachine  # noqa: E402


@replobj.replicated
class Table:
    """A flat key-value table, the shape of a large replicated state."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}

    def put(self, key: str, value: int) -> None:
        """Set ``key`` to ``value``."""
        self.rows[key] = value


def _table(keys: int) -> Table:
    table = Table()
    table.rows = {f"key-{i}": i for i in range(keys)}
    return table


def measure(keys: int) -> tuple[int, float, float]:
    """Bytes, snapshot seconds and restore seconds for a table of ``keys`` rows."""
    machine = StateMachine()
    machine.attach("table", _table(keys))
    started = time.perf_counter()
    data = machine.snapshot()
    taken = time.perf_counter() - started
    fresh = StateMachine()
    fresh.attach("table", Table())
    started = time.perf_counter()
    fresh.restore(data)
    restored = time.perf_counter() - started
    return len(data), taken, restored


def sizes_table(sizes: list[int]) -> None:
    """Print the serialisation cost by state size."""
    timeout = RuntimeOptions().election_timeout
    print("| keys | snapshot MB | snapshot s | restore s | share of election timeout |")
    print("|---:|---:|---:|---:|---:|")
    for keys in sizes:
        size, taken, restored = measure(keys)
        print(
            f"| {keys:,} | {size / 1e6:.1f} | {taken:.3f} | {restored:.3f} | "
            f"{taken / timeout:.2f} |"
        )


# ---------------------------------------------------------------------- cluster


class SendClock:
    """A transport that timestamps every ``AppendEntries`` it sends, per peer."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.sent: dict[str, list[float]] = defaultdict(list)

    def send(self, to: str, message: Any) -> Any:
        """Record, then send."""
        if type(message).__name__ == "AppendEntries":
            self.sent[to].append(time.perf_counter())
        return self._inner.send(to, message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


PICKLING: list[float] = []
"""Seconds of every ``StateMachine.snapshot`` call (wherever it runs)."""


def _time_pickling() -> None:
    pickle_state = StateMachine.snapshot

    def timed(self: StateMachine, *args: Any, **kwargs: Any) -> bytes:
        started = time.perf_counter()
        try:
            return pickle_state(self, *args, **kwargs)
        finally:
            PICKLING.append(time.perf_counter() - started)

    StateMachine.snapshot = timed  # type: ignore[method-assign]


def _longest_gap(times: list[float], start: float, end: float, *, within: bool = False) -> float:
    """The longest interval between consecutive ``times`` that overlaps ``[start, end]``
    (or lies ``within`` it)."""
    if within:
        gaps = [b - a for a, b in itertools.pairwise(times) if a >= start and b <= end]
    else:
        gaps = [b - a for a, b in itertools.pairwise(times) if b >= start and a <= end]
    return max(gaps, default=0.0)


@dataclass(frozen=True, slots=True)
class ClusterRun:
    """One snapshot of the leader, measured."""

    snapshot_bytes: int
    pickling: float
    call: float
    heartbeat_gap: float
    loop_gap: float
    idle_heartbeat_gap: float
    elections: int


async def _ticker(ticks: list[float]) -> None:
    while True:
        ticks.append(time.perf_counter())
        await anyio.sleep(0.005)


async def cluster_runs(keys: int, runs: int, root: Path) -> list[ClusterRun]:
    """Start three nodes with ``keys`` rows each, then snapshot the leader ``runs`` times."""
    from _bench_common import free_port

    addresses = {f"n{i}": f"127.0.0.1:{free_port()}" for i in range(3)}
    clocks: dict[str, SendClock] = {}

    def clock_for(node_id: str) -> Any:
        def wrap(transport: Any) -> Any:
            clocks[node_id] = SendClock(transport)
            return clocks[node_id]

        return wrap

    nodes, tables = {}, {}
    secret = replobj.new_secret()
    for node_id, address in addresses.items():
        nodes[node_id] = replobj.Node(
            node_id,
            secret=secret,
            listen=address,
            peers=addresses,
            data_dir=root / node_id,
            snapshot_entries=10_000_000,  # only the snapshots asked for
            wrap_transport=clock_for(node_id),
        )
    for node_id, node in nodes.items():
        tables[node_id] = node.attach("table", _table(keys))
    results = []
    ticks: list[float] = []
    async with anyio.create_task_group() as tasks:
        for node in nodes.values():
            await tasks.start(node.serve)
        leader_id = await nodes["n0"].wait_for_leader(30.0)
        leader = nodes[leader_id]
        tasks.start_soon(_ticker, ticks)
        for run in range(runs):
            for i in range(10):
                await tables[leader_id].put(f"run-{run}-{i}", i)
            gc.collect()
            term = leader.status().term
            idle_start = time.perf_counter()
            await anyio.sleep(1.0)
            idle_end = time.perf_counter()
            del PICKLING[:]
            start = time.perf_counter()
            await leader.snapshot()
            end = time.perf_counter()
            await anyio.sleep(3 * leader.runtime.options.heartbeat_interval)
            sent = clocks[leader_id].sent
            followers = [n for n in nodes if n != leader_id]
            results.append(
                ClusterRun(
                    snapshot_bytes=leader.runtime.storage.snapshot_size(),
                    pickling=sum(PICKLING),
                    call=end - start,
                    heartbeat_gap=max(_longest_gap(sent[n], start, end) for n in followers),
                    loop_gap=_longest_gap(ticks, start, end),
                    idle_heartbeat_gap=max(
                        _longest_gap(sent[n], idle_start, idle_end, within=True) for n in followers
                    ),
                    elections=leader.status().term - term,
                )
            )
        for node in nodes.values():
            await node.aclose()
        tasks.cancel_scope.cancel()
    return results


def _describe_tree(tree: Path) -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return tree.name
    return head


def cluster_table(args: argparse.Namespace) -> None:
    """Print one row per snapshot of the leader."""
    _time_pickling()
    logging.getLogger("replobj").setLevel(logging.ERROR)  # nodes not yet listening at start
    label = args.label or _describe_tree(TREE)
    interval = RuntimeOptions().heartbeat_interval
    with tempfile.TemporaryDirectory(prefix="replobj-snapshot-bench-") as root:
        rows = anyio.run(cluster_runs, args.keys, args.runs, Path(root), backend=args.backend)
    print(
        f"# replobj from {Path(replobj.__file__).parent} ({label}), {args.backend}, Python "
        f"{sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        "| code | keys | snapshot MB | pickling s | snapshot call s | longest heartbeat gap s "
        "| heartbeat interval s | longest loop gap s | idle heartbeat gap s | elections |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {label} | {args.keys:,} | {row.snapshot_bytes / 1e6:.1f} | {row.pickling:.3f} "
            f"| {row.call:.3f} | {row.heartbeat_gap:.3f} | {interval:.3f} | {row.loop_gap:.3f} "
            f"| {row.idle_heartbeat_gap:.3f} | {row.elections} |"
        )


async def install_runs(keys: int, runs: int) -> list[tuple[int, float, float]]:
    """Bytes, seconds and longest loop gap of checking and restoring a received snapshot."""
    source = StateMachine()
    source.attach("table", _table(keys))
    data = source.snapshot()
    results = []
    ticks: list[float] = []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_ticker, ticks)
        for _ in range(runs):
            target = StateMachine()
            target.attach("table", _table(keys))  # a lagging follower's state, freed on restore
            gc.collect()
            await anyio.sleep(0.2)
            start = time.perf_counter()
            if hasattr(target, "restore_checked"):  # the runtime's way since 0x02 snapshots
                from replobj.snapshot_thread import run_stoppable

                checked = await run_stoppable(functools.partial(target.check_snapshot, data))
                target.restore_checked(checked)
            else:  # the runtime's way before: check, then restore, both on the loop
                target.check_snapshot(data)
                target.restore(data)
            end = time.perf_counter()
            await anyio.sleep(0.05)
            results.append((len(data), end - start, _longest_gap(ticks, start, end)))
        tasks.cancel_scope.cancel()
    return results


def install_table(args: argparse.Namespace) -> None:
    """Print one row per install."""
    label = args.label or _describe_tree(TREE)
    rows = anyio.run(install_runs, args.keys, args.runs, backend=args.backend)
    print(f"# replobj from {Path(replobj.__file__).parent} ({label}), {args.backend}")
    print("| code | keys | snapshot MB | check + restore s | longest loop gap s |")
    print("|---|---:|---:|---:|---:|")
    for size, took, gap in rows:
        print(f"| {label} | {args.keys:,} | {size / 1e6:.1f} | {took:.3f} | {gap:.3f} |")


def main() -> None:
    """Parse the arguments and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--cluster", action="store_true", help="three nodes; see the docstring")
    parser.add_argument("--install", action="store_true", help="a received snapshot restored")
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    parser.add_argument("--tree", default=str(HERE.parent), help="the replobj source tree")
    parser.add_argument("--label", default="", help="the code column (default: its commit)")
    args = parser.parse_args()
    if args.cluster:
        cluster_table(args)
    elif args.install:
        install_table(args)
    else:
        sizes_table([int(size) for size in args.sizes.split(",")])


if __name__ == "__main__":
    main()
