"""Throughput and latency of a replicated counter: replobj vs PySyncObj, 3 processes each.

Run ``.venv/bin/python benchmarks/throughput.py`` from the repository root (``--quick``
for a short smoke run). For each system it starts a 3-member cluster of OS processes on
127.0.0.1 (free ports; data directories in a temporary directory: RocksDB with fsync for
replobj, the file journal and dump file for PySyncObj), waits for a leader, then has a
client inside the leader's process, and then inside a follower's process, increment the
counter with 1 and with 1,000 calls in flight for a fixed time. Both clusters run side by
side and each row is measured on one system right after the other, so both see the same
background load; every member must exit cleanly at the end. It prints one markdown
table with calls/s and p50/p99 latency per row for both systems, the ratio
replobj/PySyncObj of calls/s, and the elections (term increases) seen during each row.
``--baseline DIR`` adds a third cluster running another replobj source tree (say the
previous commit, from ``git archive``), interleaved the same way, and a second table
with the ratio of this tree to that one: the way to see a change through the noise of
a shared machine.

The figures are recorded in ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from _bench_common import LoadFigures, free_port

CLUSTER_SECRET = secrets.token_urlsafe(32)
"""A random secret shared by this run's replobj members (through ``REPLOBJ_SECRET``)."""

HERE = Path(__file__).resolve().parent
MEMBER_SCRIPTS = {
    "replobj": HERE / "_bench_replobj_member.py",
    "pysyncobj": HERE / "_bench_pysyncobj_member.py",
}
MEMBER_IDS = ("a", "b", "c")


class BenchmarkError(RuntimeError):
    """A member failed to start, answered with an error, or did not answer in time."""


class Member:
    """One member process and its JSON-lines control channel.

    :param system: ``"replobj"``, ``"pysyncobj"`` or ``"baseline"`` (see ``--baseline``).
    :param node_id: its id.
    :param argv: the member script's arguments.
    :param log_path: where its stderr goes.
    """

    def __init__(self, system: str, node_id: str, argv: list[str], log_path: Path) -> None:
        self.node_id = node_id
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(MEMBER_SCRIPTS[system]), *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=HERE.parent,
            env={**os.environ, "REPLOBJ_SECRET": CLUSTER_SECRET},
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def next_message(self, timeout: float) -> dict[str, Any]:
        """The member's next output line, decoded.

        :raises BenchmarkError: if it exited or stayed silent for ``timeout`` seconds.
        """
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise BenchmarkError(
                f"member {self.node_id} silent for {timeout:.0f}s (log: {self.log_path})"
            ) from None
        if line is None:
            raise BenchmarkError(f"member {self.node_id} exited (log: {self.log_path})")
        message: dict[str, Any] = json.loads(line)
        return message

    def request(self, timeout: float, **request: Any) -> Any:
        """Send one request and return the reply's value.

        :raises BenchmarkError: if the member answered with an error or not in time.
        """
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self.next_message(timeout)
        if not reply.get("ok"):
            raise BenchmarkError(f"member {self.node_id}: {reply.get('error')}")
        return reply["value"]

    def stop(self, timeout: float) -> int | None:
        """Ask the member to stop; kill it if it has not exited after ``timeout`` seconds.

        Returns its exit status, or ``None`` if it had to be killed.
        """
        try:
            if self.process.poll() is None:
                self.request(timeout, op="stop")
            code: int | None = self.process.wait(timeout)
        except (BenchmarkError, OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
            code = None
        self._log.close()
        return code


@dataclass(frozen=True, slots=True)
class Row:
    """One measured row: where the client ran, how many calls were in flight, what it saw.

    :param client: ``"leader"`` or ``"follower"``.
    :param concurrency: calls in flight.
    :param figures: the client's measurement.
    :param elections: the largest term increase any member saw during the row.
    """

    client: str
    concurrency: int
    figures: LoadFigures
    elections: int


class Cluster:
    """Three members of one system on 127.0.0.1, data under ``workdir/<system>/``."""

    def __init__(self, system: str, workdir: Path, args: argparse.Namespace) -> None:
        self.system = system
        root = workdir / system
        root.mkdir(parents=True)
        peers = ",".join(f"{n}=127.0.0.1:{free_port()}" for n in MEMBER_IDS)
        self.members: dict[str, Member] = {}
        for node_id in MEMBER_IDS:
            argv = ["--id", node_id, "--peers", peers, "--data-dir", str(root / node_id)]
            if system in ("replobj", "baseline"):
                argv += ["--election-timeout", str(args.election_timeout)]
                argv += ["--heartbeat", str(args.heartbeat)]
            else:
                argv += ["--append-period", str(args.pysyncobj_period)]
            self.members[node_id] = Member(system, node_id, argv, root / f"{node_id}.log")

    def wait_ready(self, timeout: float) -> None:
        """Wait until every member serves.

        :raises BenchmarkError: if one did not report ready in time.
        """
        for member in self.members.values():
            message = member.next_message(timeout)
            if message.get("event") != "ready":
                raise BenchmarkError(f"member {member.node_id} said {message} before ready")

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Every member's role, term and known leader."""
        return {n: m.request(10.0, op="status") for n, m in self.members.items()}

    def wait_leader(self, timeout: float) -> str:
        """The leader's id once every member agrees on it.

        :raises BenchmarkError: if they did not agree in time.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses = self.statuses()
            leaders = {s["leader"] for s in statuses.values()}
            if len(leaders) == 1 and None not in leaders:
                leader = leaders.pop()
                if statuses[leader]["role"] == "leader":
                    return str(leader)
            time.sleep(0.1)
        raise BenchmarkError(f"{self.system}: no agreed leader within {timeout:.0f}s")

    def measure(self, client: str, concurrency: int, warmup: float, duration: float) -> Row:
        """Run one row with the client in the current leader or in a follower."""
        leader = self.wait_leader(30.0)
        where = leader if client == "leader" else min(set(self.members) - {leader})
        before = self.statuses()
        value = self.members[where].request(
            warmup + duration + 90.0,
            op="load",
            concurrency=concurrency,
            warmup=warmup,
            duration=duration,
        )
        after = self.statuses()
        elections = max(after[n]["term"] - before[n]["term"] for n in self.members)
        return Row(client, concurrency, LoadFigures.from_json(value), elections)

    def stop(self) -> list[str]:
        """Stop every member; returns the ids of those that had to be killed or failed."""
        codes = {n: m.stop(30.0) for n, m in self.members.items()}
        return [f"{n} (exit {c})" for n, c in codes.items() if c != 0]


def run_interleaved(
    systems: list[str], workdir: Path, plan: list[tuple[str, int]], args: argparse.Namespace
) -> dict[str, list[Row]]:
    """Start one cluster per system, then measure each row of ``plan`` on every system in
    turn (so both see the same background load), then stop every cluster."""
    clusters: dict[str, Cluster] = {}
    results: dict[str, list[Row]] = {system: [] for system in systems}
    failed: list[str] = []
    try:
        for system in systems:
            started = time.monotonic()
            cluster = clusters[system] = Cluster(system, workdir, args)
            cluster.wait_ready(60.0)
            leader = cluster.wait_leader(30.0)
            print(
                f"# {system}: leader {leader} after {time.monotonic() - started:.1f}s", flush=True
            )
        for client, concurrency in plan:
            for system, cluster in clusters.items():
                row = cluster.measure(client, concurrency, args.warmup, args.duration)
                f = row.figures
                print(
                    f"#   {system:9} {client:8} x{concurrency:<5} {f.rate:>9,.0f}/s "
                    f"p50 {f.p50_ms:.2f} ms p99 {f.p99_ms:.2f} ms, {f.errors} errors, "
                    f"{row.elections} elections, client CPU {f.cpu_share:.0%}",
                    flush=True,
                )
                results[system].append(row)
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


def _cell(row: Row | None) -> list[str]:
    if row is None:
        return ["-"] * 5
    f = row.figures
    return [f"{f.rate:,.0f}", f"{f.p50_ms:.2f}", f"{f.p99_ms:.2f}", str(row.elections),
            str(f.errors)]  # fmt: skip


def print_table(plan: list[tuple[str, int]], results: dict[str, list[Row]]) -> None:
    """One markdown table: both systems side by side and the ratio of calls/s per row."""
    head = ["calls/s", "p50 ms", "p99 ms", "elections", "errors"]
    columns = ["client in", "in flight"]
    columns += [f"replobj {h}" for h in head] + [f"PySyncObj {h}" for h in head]
    columns.append("ratio replobj/PySyncObj")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for i, (client, concurrency) in enumerate(plan):
        ours = results["replobj"][i] if "replobj" in results else None
        theirs = results["pysyncobj"][i] if "pysyncobj" in results else None
        ratio = "-"
        if ours is not None and theirs is not None and theirs.figures.rate > 0:
            ratio = f"{ours.figures.rate / theirs.figures.rate:.2f}"
        cells = [client, f"{concurrency:,}", *_cell(ours), *_cell(theirs), ratio]
        print("| " + " | ".join(cells) + " |")


def print_baseline_table(plan: list[tuple[str, int]], results: dict[str, list[Row]]) -> None:
    """replobj against the ``--baseline`` checkout, measured row by row in the same run."""
    head = ["calls/s", "p50 ms", "p99 ms", "elections", "errors"]
    columns = ["client in", "in flight"]
    columns += [f"replobj {h}" for h in head] + [f"baseline {h}" for h in head]
    columns.append("ratio replobj/baseline")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for i, (client, concurrency) in enumerate(plan):
        ours, base = results["replobj"][i], results["baseline"][i]
        ratio = f"{ours.figures.rate / base.figures.rate:.2f}" if base.figures.rate > 0 else "-"
        cells = [client, f"{concurrency:,}", *_cell(ours), *_cell(base), ratio]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    """Parse the options, run the systems one after the other, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (~30 s)")
    parser.add_argument("--duration", type=float, help="measured seconds per row")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each row")
    parser.add_argument("--in-flight", default="1,1000", help="comma-separated concurrencies")
    parser.add_argument("--systems", default="replobj,pysyncobj", help="comma-separated subset")
    parser.add_argument("--election-timeout", type=float, default=1.0, help="replobj's, seconds")
    parser.add_argument("--heartbeat", type=float, default=0.1, help="replobj's, seconds")
    parser.add_argument(
        "--pysyncobj-period", type=float, default=0.1, help="PySyncObj's appendEntriesPeriod"
    )
    parser.add_argument("--workdir", type=Path, help="where data dirs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs and logs")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another replobj source tree (e.g. from `git archive`): also run its member "
        "script as system 'baseline', interleaved row by row with this tree's",
    )
    args = parser.parse_args()
    args.duration = args.duration or (1.5 if args.quick else 8.0)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0)
    concurrencies = [int(c) for c in args.in_flight.split(",")]
    plan = [(client, c) for client in ("leader", "follower") for c in concurrencies]
    systems = args.systems.split(",")
    if args.baseline is not None:
        MEMBER_SCRIPTS["baseline"] = (
            args.baseline.resolve() / "benchmarks" / MEMBER_SCRIPTS["replobj"].name
        )
        if "replobj" not in systems or not MEMBER_SCRIPTS["baseline"].is_file():
            parser.error("--baseline needs the replobj system and a tree with benchmarks/")
        systems.append("baseline")
    unknown = set(systems) - set(MEMBER_SCRIPTS)
    if unknown:
        parser.error(f"unknown systems: {sorted(unknown)}")

    workdir = Path(tempfile.mkdtemp(prefix="replobj-bench-", dir=args.workdir))
    print(
        f"# Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"data in {workdir} ({_filesystem_of(workdir)}); {args.warmup:g} s warm-up + "
        f"{args.duration:g} s per row; load average "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg()),
        flush=True,
    )
    print(
        f"# replobj: election timeout {args.election_timeout:g} s, heartbeat {args.heartbeat:g} s; "
        f"PySyncObj: appendEntriesPeriod {args.pysyncobj_period:g} s, defaults otherwise",
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
    if "baseline" in results:
        print()
        print_baseline_table(plan, results)


if __name__ == "__main__":
    main()
