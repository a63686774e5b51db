"""Throughput, latency and CPU per call of a replicated counter: replobj vs PySyncObj.

Run ``.venv/bin/python benchmarks/throughput.py`` from the repository root (``--quick``
for a short smoke run); it prints the whole table. For each system it starts a 3-member
cluster of OS processes on 127.0.0.1 (free ports; data directories in a temporary
directory: RocksDB with fsync for replobj, with a random secret; the file journal and
dump file for PySyncObj), waits for a leader, then runs each row with the load inside
the leader's process (or a follower's, where the row says so):

- commands with 1 caller (leader, follower), 64 and 1,000 in flight;
- linearizable reads (``await counter.get()``) at 64 and 1,000 in flight (replobj only:
  PySyncObj has none);
- local reads from one caller (``await counter.get.local()`` vs a plain PySyncObj method),
  and the synchronous ``counter.get.local_now()`` (yielding once a millisecond) vs the same;
- bulk submit: ``await counter.incr.many([1] * 1000)`` in a loop (PySyncObj: 1,000
  callbacks started at once, then waited for), to hold against commands at 1,000 in flight.

Systems: ``replobj`` (uvloop when installed), ``replobj-asyncio`` (``REPLOBJ_UVLOOP=0``),
``pysyncobj`` (its best setting here: batched AppendEntries, the default) and
``pysyncobj-nobatch`` (``appendEntriesUseBatch=False``). All clusters run side by side
and each row is measured on one system right after the other, so all see the same
background load. Every row reports calls/s, p50/p99 latency, the CPU time of all three
members per call in units of one ``sum(range(1000))`` (timed just before the row: the
unit cancels the machine's speed out), the elections seen (the largest term increase of
any member) and errors; the last column is calls/s over the better of PySyncObj's two
settings in that row.

``--count-wakeups`` runs the replobj members on plain asyncio counting event-loop
iterations and callbacks run, and prints them per call and member; ``--profile DIR``
records each member with ``py-spy`` during each row (summarise with
``benchmarks/profile_summary.py DIR``). ``--baseline DIR`` adds a cluster running another
replobj source tree (with this member protocol, i.e. from this commit on), interleaved
the same way: the way to see a change through the noise of a shared machine.

The figures are recorded in ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from _bench_cluster import MEMBER_SCRIPTS, BenchmarkError, Cluster, Row, RowSpec, Unsupported
from _bench_common import yardstick_seconds

ROWS = {
    "cmd1": RowSpec("command x1 leader", "command", "leader", 1),
    "cmd1f": RowSpec("command x1 follower", "command", "follower", 1),
    "cmd64": RowSpec("command x64", "command", "leader", 64),
    "cmd1000": RowSpec("command x1000", "command", "leader", 1000),
    "read64": RowSpec("linearizable read x64", "read", "leader", 64),
    "read1000": RowSpec("linearizable read x1000", "read", "leader", 1000),
    "local": RowSpec("local read x1", "local", "leader", 1),
    "localnow": RowSpec("local read now x1", "localnow", "leader", 1),
    "bulk": RowSpec("bulk many(1000) x1", "bulk", "leader", 1, batch=1000),
}
PYSYNCOBJ = ("pysyncobj", "pysyncobj-nobatch")


def run_interleaved(
    systems: list[str], workdir: Path, plan: list[RowSpec], args: argparse.Namespace
) -> dict[str, dict[str, Row | None]]:
    """Start one cluster per system, measure each row on every system in turn, stop them."""
    clusters: dict[str, Cluster] = {}
    results: dict[str, dict[str, Row | None]] = {system: {} for system in systems}
    failed: list[str] = []
    try:
        for system in systems:
            started = time.monotonic()
            cluster = clusters[system] = Cluster(system, workdir, args)
            cluster.wait_ready(60.0)
            leader = cluster.wait_leader(30.0)
            print(f"# {system}: leader {leader} after {time.monotonic() - started:.1f}s")
        for spec in plan:
            for system, cluster in clusters.items():
                try:
                    row: Row | None = cluster.measure(spec, args.warmup, args.duration)
                except Unsupported:
                    row = None
                results[system][spec.name] = row
                if row is not None:
                    f = row.figures
                    print(
                        f"#   {spec.name:24} {system:17} {f.rate:>10,.0f}/s p50 {f.p50_ms:.3f} "
                        f"ms p99 {f.p99_ms:.3f} ms, {row.units:.2f} units/call, "
                        f"{row.elections} elections, {f.errors} errors",
                        flush=True,
                    )
    finally:
        for system, cluster in clusters.items():
            failed += [f"{system} {member}" for member in cluster.stop()]
    if failed:
        raise BenchmarkError(f"members did not exit cleanly: {', '.join(failed)}")
    return results


def _filesystem_of(path: Path) -> str:
    best, kind = "", "unknown"
    with open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if str(path).startswith(fields[1]) and len(fields[1]) > len(best):
                best, kind = fields[1], fields[2]
    return kind


def print_table(plan: list[RowSpec], results: dict[str, dict[str, Row | None]]) -> None:
    """One markdown table: a line per row and system."""
    columns = ["row", "system", "calls/s", "p50 ms", "p99 ms", "CPU units/call",
               "elections", "errors", "calls/s vs best PySyncObj"]  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for spec in plan:
        rates = [r.figures.rate for s in PYSYNCOBJ if (r := results.get(s, {}).get(spec.name))]
        best = max(rates, default=0.0)
        for system, rows in results.items():
            row = rows.get(spec.name)
            if row is None:
                cells = ["-"] * 6 + ["(no such call)"]
            else:
                f = row.figures
                ratio = f"{f.rate / best:.2f}" if best else "-"
                cells = [f"{f.rate:,.0f}", f"{f.p50_ms:.3f}", f"{f.p99_ms:.3f}",
                         f"{row.units:.3g}", str(row.elections), str(f.errors), ratio]  # fmt: skip
            print("| " + " | ".join([spec.name, system, *cells]) + " |")


def print_wakeups(plan: list[RowSpec], results: dict[str, dict[str, Row | None]]) -> None:
    """Event-loop iterations and callbacks run per call, per replobj member."""
    print(
        "\n| row | system | member | loop wake-ups/call | callbacks/call |\n|---|---|---|---|---|"
    )
    for spec in plan:
        for system, rows in results.items():
            row = rows.get(spec.name)
            for member, (wakeups, handles) in (row.wakeups if row else {}).items():
                print(f"| {spec.name} | {system} | {member} | {wakeups:.2f} | {handles:.2f} |")


def main() -> None:
    """Parse the options, run the systems side by side, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--duration", type=float, help="measured seconds per row")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each row")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"subset of {','.join(ROWS)}")
    parser.add_argument("--systems", default="replobj,pysyncobj,pysyncobj-nobatch",
                        help=f"comma-separated subset of {','.join(MEMBER_SCRIPTS)}")  # fmt: skip
    parser.add_argument("--election-timeout", type=float, default=1.0, help="replobj's, seconds")
    parser.add_argument("--heartbeat", type=float, default=0.1, help="replobj's, seconds")
    parser.add_argument("--pysyncobj-period", type=float, default=0.1,
                        help="PySyncObj's appendEntriesPeriod")  # fmt: skip
    parser.add_argument("--count-wakeups", action="store_true",
                        help="replobj on asyncio, counting loop wake-ups per call")  # fmt: skip
    parser.add_argument("--profile", type=Path, help="py-spy each member into this directory")
    parser.add_argument("--workdir", type=Path, help="where data dirs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs and logs")
    parser.add_argument("--baseline", type=Path, help="another replobj source tree")
    args = parser.parse_args()
    args.duration = args.duration or (1.5 if args.quick else 6.0)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0)
    plan = [ROWS[key] for key in args.rows.split(",")]
    systems = args.systems.split(",")
    if args.baseline is not None:
        MEMBER_SCRIPTS["baseline"] = (
            args.baseline.resolve() / "benchmarks" / MEMBER_SCRIPTS["replobj"].name
        )
        if not MEMBER_SCRIPTS["baseline"].is_file():
            parser.error("--baseline needs a tree with benchmarks/")
        systems.append("baseline")
    unknown = set(systems) - set(MEMBER_SCRIPTS)
    if unknown:
        parser.error(f"unknown systems: {sorted(unknown)}")

    workdir = Path(tempfile.mkdtemp(prefix="replobj-bench-", dir=args.workdir))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"# Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"data in {workdir} ({_filesystem_of(workdir)}); {args.warmup:g} s warm-up + "
        f"{args.duration:g} s per row; load average {load}; sum(range(1000)) takes "
        f"{yardstick_seconds() * 1e6:.2f} µs (the CPU unit)\n"
        f"# replobj: election timeout {args.election_timeout:g} s, heartbeat {args.heartbeat:g} s"
        f"{', counting wake-ups (asyncio)' if args.count_wakeups else ''}; PySyncObj: "
        f"appendEntriesPeriod {args.pysyncobj_period:g} s",
        flush=True,
    )
    ok = False
    try:
        results = run_interleaved(systems, workdir, plan, args)
        ok = True
    finally:
        if args.keep or not ok:
            print(f"# data and logs kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# load average at the end: {load}\n")
    print_table(plan, results)
    if args.count_wakeups:
        print_wakeups(plan, results)


if __name__ == "__main__":
    main()
