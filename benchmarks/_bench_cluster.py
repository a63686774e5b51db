"""Member processes and 3-member clusters for ``throughput.py`` (see its docstring)."""

from __future__ import annotations

import argparse
import ast
import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from _bench_common import SECRET_ENV, LoadFigures, free_port, yardstick_seconds

HERE = Path(__file__).resolve().parent
MEMBER_SCRIPTS = {
    "replobj": HERE / "_bench_replobj_member.py",
    "replobj-asyncio": HERE / "_bench_replobj_member.py",
    "pysyncobj": HERE / "_bench_pysyncobj_member.py",
    "pysyncobj-nobatch": HERE / "_bench_pysyncobj_member.py",
}
MEMBER_IDS = ("a", "b", "c")


class BenchmarkError(RuntimeError):
    """A member failed to start, answered with an error, or did not answer in time."""


class Unsupported(BenchmarkError):
    """The system has no such calls (PySyncObj's linearizable reads)."""


@dataclass(frozen=True, slots=True)
class RowSpec:
    """What one row runs: ``kind`` calls (see ``_bench_common.KINDS``) from ``client``.

    :param name: the row's label.
    :param kind: one of ``_bench_common.KINDS``.
    :param client: ``"leader"`` or ``"follower"``: where the load runs.
    :param concurrency: callers in flight.
    :param batch: commands per bulk submit.
    """

    name: str
    kind: str
    client: str
    concurrency: int
    batch: int = 1


@dataclass(frozen=True, slots=True)
class Row:
    """One measured row of one system.

    :param spec: what ran.
    :param figures: the client's measurement.
    :param elections: the largest term increase any member saw during the row.
    :param units: CPU time of all members per call, in ``sum(range(1000))`` times.
    :param yardstick_us: that unit in microseconds, measured just before the row.
    :param wakeups: per member (``a (leader)``, ...): event-loop iterations and callbacks
        run per call, when the members count them.
    """

    spec: RowSpec
    figures: LoadFigures
    elections: int
    units: float
    yardstick_us: float
    wakeups: dict[str, tuple[float, float]] = field(default_factory=dict)


class Member:
    """One member process and its JSON-lines control channel."""

    def __init__(self, script: Path, node_id: str, argv: list[str], log: Path, env: dict[str, str]):
        self.node_id = node_id
        self.log_path = log
        self._log: IO[bytes] = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(script), *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=HERE.parent,
            env=env,
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

        :raises Unsupported: if the member cannot run that kind of load.
        :raises BenchmarkError: if the member answered with another error or not in time.
        """
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self.next_message(timeout)
        if not reply.get("ok"):
            error = str(reply.get("error"))
            raise (Unsupported if "unsupported" in error else BenchmarkError)(
                f"member {self.node_id}: {error}"
            )
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


class Cluster:
    """Three members of one system on 127.0.0.1, data under ``workdir/<system>/``."""

    def __init__(self, system: str, workdir: Path, args: argparse.Namespace) -> None:
        import replobj

        self.system = system
        self.profile_dir: Path | None = args.profile
        root = workdir / system
        root.mkdir(parents=True)
        peers = ",".join(f"{n}=127.0.0.1:{free_port()}" for n in MEMBER_IDS)
        env = dict(os.environ)
        env[SECRET_ENV] = replobj.new_secret()
        if system == "replobj-asyncio":
            env["REPLOBJ_UVLOOP"] = "0"
        self.members: dict[str, Member] = {}
        for node_id in MEMBER_IDS:
            argv = ["--id", node_id, "--peers", peers, "--data-dir", str(root / node_id)]
            if system.startswith("pysyncobj"):
                argv += ["--append-period", str(args.pysyncobj_period)]
                argv += ["--no-batch"] if system == "pysyncobj-nobatch" else []
            else:
                argv += ["--election-timeout", str(args.election_timeout)]
                argv += ["--heartbeat", str(args.heartbeat)]
                argv += ["--count-wakeups"] if args.count_wakeups else []
            script = MEMBER_SCRIPTS[system]
            self.members[node_id] = Member(script, node_id, argv, root / f"{node_id}.log", env)
        self.kinds = member_kinds(MEMBER_SCRIPTS[system])

    def wait_ready(self, timeout: float) -> None:
        """Wait until every member serves.

        :raises BenchmarkError: if one did not report ready in time.
        """
        for member in self.members.values():
            message = member.next_message(timeout)
            if message.get("event") != "ready":
                raise BenchmarkError(f"member {member.node_id} said {message} before ready")

    def ask(self, op: str) -> dict[str, dict[str, Any]]:
        """Every member's answer to ``op`` (``status`` or ``cpu``)."""
        return {n: m.request(10.0, op=op) for n, m in self.members.items()}

    def wait_leader(self, timeout: float) -> str:
        """The leader's id once every member agrees on it.

        :raises BenchmarkError: if they did not agree in time.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses = self.ask("status")
            leaders = {s["leader"] for s in statuses.values()}
            if len(leaders) == 1 and None not in leaders:
                leader = leaders.pop()
                if statuses[leader]["role"] == "leader":
                    return str(leader)
            time.sleep(0.1)
        raise BenchmarkError(f"{self.system}: no agreed leader within {timeout:.0f}s")

    def measure(self, spec: RowSpec, warmup: float, duration: float) -> Row:
        """Run one row; CPU and wake-ups are counted around the whole load request.

        :raises Unsupported: if this system has no such calls.
        """
        if spec.kind not in self.kinds:  # an older tree's member would run something else
            raise Unsupported(f"{self.system}: its members know only the loads {self.kinds}")
        leader = self.wait_leader(30.0)
        where = leader if spec.client == "leader" else min(set(self.members) - {leader})
        yardstick = yardstick_seconds()
        before, cpu_before = self.ask("status"), self.ask("cpu")
        profilers = self._profile(spec, warmup + duration)
        value = self.members[where].request(
            warmup + duration + 90.0,
            op="load",
            kind=spec.kind,
            concurrency=spec.concurrency,
            batch=spec.batch,
            warmup=warmup,
            duration=duration,
        )
        cpu_after, after = self.ask("cpu"), self.ask("status")
        for profiler in profilers:
            profiler.wait(60)
        figures = LoadFigures.from_json(value)
        calls = max(figures.total_calls, 1)
        cpu = sum(cpu_after[n]["cpu"] - cpu_before[n]["cpu"] for n in self.members)
        wakeups = {
            f"{n} ({'leader' if n == leader else 'follower'})": (
                (cpu_after[n]["wakeups"] - cpu_before[n]["wakeups"]) / calls,
                (cpu_after[n]["handles"] - cpu_before[n]["handles"]) / calls,
            )
            for n in self.members
            if "wakeups" in cpu_after[n]
        }
        elections = max(after[n]["term"] - before[n]["term"] for n in self.members)
        return Row(spec, figures, elections, cpu / calls / yardstick, yardstick * 1e6, wakeups)

    def _profile(self, spec: RowSpec, seconds: float) -> list[subprocess.Popen[bytes]]:
        if self.profile_dir is None:
            return []
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        py_spy = str(Path(sys.executable).parent / "py-spy")
        started = []
        for node_id, member in self.members.items():
            out = self.profile_dir / f"{spec.name.replace(' ', '_')}-{self.system}-{node_id}.txt"
            command = [py_spy, "record", "--gil", "--format", "raw", "-r", "250"]
            command += ["-d", f"{seconds:.0f}"]
            command += ["-p", str(member.process.pid), "-o", str(out)]
            started.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        return started

    def stop(self) -> list[str]:
        """Stop every member; returns the ids of those that had to be killed or failed."""
        codes = {n: m.stop(30.0) for n, m in self.members.items()}
        return [f"{n} (exit {c})" for n, c in codes.items() if c != 0]


def member_kinds(script: Path) -> tuple[str, ...]:
    """The loads a member script knows: ``KINDS`` of the ``_bench_common.py`` next to it
    (read, not imported: a ``--baseline`` tree's may be older than this one's)."""
    tree = ast.parse((script.parent / "_bench_common.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "KINDS" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    raise BenchmarkError(f"no KINDS in {script.parent / '_bench_common.py'}")
