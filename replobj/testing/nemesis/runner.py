"""One nemesis run: start 3 or 5 member processes, load them under faults, heal, check."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from ...demo import STORE, MemberError, ProcessCluster
from ...secret import new_secret
from ..checker import check_history
from ..history import Operation
from ..models import KeyValueModel
from .disk import ExpectedCrash
from .faults import Nemesis
from .plot import write_latency_plot
from .power import PowerRig
from .report import POWER_KINDS, RunConfig, RunReport
from .workload import (
    Workload,
    local_read_problems,
    replica_problems,
    without_unread_unknown_puts,
)

__all__ = ["MEMBER_PROGRAM", "arun", "run_seed"]

MEMBER_PROGRAM = (sys.executable, "-m", "replobj.demo", "member")
"""The command that runs one member with the demo's store attached."""


async def arun(
    config: RunConfig, workdir: Path, program: Sequence[str] = MEMBER_PROGRAM
) -> RunReport:
    """Run ``config`` with the members' data and logs under ``workdir``.

    :param program: the command that runs one member (a test passes a deliberately broken
        one to show the checks catch it).
    """
    started = time.monotonic()
    rng = random.Random(config.seed)
    power = PowerRig(workdir / "disks") if set(config.faults) & set(POWER_KINDS) else None
    try:
        return await _run(config, workdir, program, started, rng, power)
    finally:
        if power is not None:
            with anyio.CancelScope(shield=True):
                await power.close()


async def _run(
    config: RunConfig,
    workdir: Path,
    program: Sequence[str],
    started: float,
    rng: random.Random,
    power: PowerRig | None,
) -> RunReport:
    cluster = ProcessCluster(
        workdir,
        program,
        backend=config.backend,
        election_timeout=config.election_timeout,
        heartbeat=config.election_timeout / 8,
        member_args=["--net-faults", str(config.seed), "--transport", config.transport],
        before_spawn=None if power is None else power.before_spawn,
        secret=new_secret(),
    )
    async with cluster:
        await cluster.start([f"n{number}" for number in range(1, config.nodes + 1)])
        await cluster.wait_for_leader(timeout=30.0)
        workload = Workload(
            cluster,
            random.Random(rng.random()),
            config.keys,
            config.op_timeout,
            config.trust_outcome_known,
        )
        load_started, load_started_ns = time.monotonic(), time.monotonic_ns()
        nemesis = Nemesis(
            cluster, rng, config.faults, config.election_timeout, load_started, config.nodes, power
        )
        stop = anyio.Event()
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(workload.run, config.nodes * config.clients_per_member, stop)
                await nemesis.run(until=load_started + config.duration)
                stop.set()
        finally:
            nemesis.resume_all()
        problems = list(nemesis.problems)
        finals = await _heal_and_read(cluster, nemesis, workload, problems)
        problems += workload.unexpected
        if finals is not None:
            journals, items = finals
            acknowledged, sent = workload.appends_acknowledged, workload.appends_sent
            refused = workload.appends_refused
            problems += replica_problems(journals, items, acknowledged, sent, refused)
            final_journal = tuple(journals[min(journals)])
            problems += local_read_problems(workload.local_reads, final_journal)
        problems += _crashes(cluster, workdir, nemesis.expected_crashes)
    history = workload.recorder.history()
    checked = without_unread_unknown_puts(history)
    verdict = check_history(checked, KeyValueModel(), budget=config.check_budget)
    if not verdict.ok:
        _write_history(workdir / "history.json", history, workload.puts_refused)
    title = f"seed {config.seed}, {config.nodes} {config.backend} members over {config.transport}"
    plotted = write_latency_plot(
        workdir / "latency.png", history, nemesis.events, load_started_ns, title
    )
    return RunReport(
        seed=config.seed,
        backend=config.backend,
        faults=tuple(nemesis.events),
        operations=len(history),
        unknown_outcome=sum(not op.outcome_known for op in history),
        unread_unknown_dropped=len(history) - len(checked),
        errors=dict(sorted(workload.errors.items())),
        failed=workload.failed,
        appends_acknowledged=len(workload.appends_acknowledged),
        local_reads=len(workload.local_reads),
        verdict=verdict.outcome.value,
        problems=tuple(problems),
        elapsed=round(time.monotonic() - started, 1),
        workdir=str(workdir),
        explanation="" if verdict.ok else verdict.explain(),
        trust_outcome_known=config.trust_outcome_known,
        nodes=config.nodes,
        transport=config.transport,
        plot=str(workdir / "latency.png") if plotted else "",
    )


async def _heal_and_read(
    cluster: ProcessCluster, nemesis: Nemesis, workload: Workload, problems: list[str]
) -> tuple[dict[str, list[Any]], dict[str, dict[str, Any]]] | None:
    """Wait for one leader and every replica caught up; return journals and maps."""
    try:
        await nemesis.reconcile()
        nodes = sorted(cluster.members)
        leader = await cluster.wait_for_leader(nodes, timeout=30.0)
        await workload.final_reads(leader)
        await cluster.wait_caught_up(nodes, timeout=30.0)
        journals: dict[str, list[Any]] = {}
        items: dict[str, dict[str, Any]] = {}
        for node in nodes:
            journals[node] = list(await cluster.members[node].local(STORE, "entries"))
            items[node] = dict(await cluster.members[node].local(STORE, "items"))
    except (TimeoutError, MemberError) as error:
        problems.append(f"the cluster did not heal: {error}")
        return None
    return journals, items


def _write_history(
    path: Path, history: Sequence[Operation], refused: Sequence[tuple[str, str, str]]
) -> None:
    """Save a history as JSON (one object per operation) for replaying the check, then the
    puts left out as refused, with their errors."""
    rows = [
        {
            "client": op.client,
            "call_time": op.call_time,
            "return_time": op.return_time,
            "name": op.name,
            "input": op.input,
            "output": None if not op.outcome_known else op.output,
        }
        for op in history
    ]
    rows += [{"refused_put": [key, value], "error": error} for key, value, error in refused]
    path.write_text(json.dumps(rows) + "\n")


def _crashes(
    cluster: ProcessCluster, workdir: Path, expected: Sequence[ExpectedCrash] = ()
) -> list[str]:
    """Members that exited without being told to, and tracebacks in any member's log
    outside the stretches where a crash was expected (a member whose disk failed)."""
    problems = [
        f"{node} exited unexpectedly (code {member.process.returncode})"
        for node, member in sorted(cluster.members.items())
        if member.exited.is_set()
    ]
    for log in sorted(workdir.glob("*.log")):
        text = log.read_bytes()
        for crash in sorted((c for c in expected if c.log == log), key=lambda c: -c.start):
            text = text[: crash.start] + text[crash.end :]
        if b"Traceback" in text:
            problems.append(f"a traceback in {log.name}")
    return problems


def run_seed(
    config: RunConfig,
    report_dir: Path | None = None,
    keep: bool = False,
    program: Sequence[str] = MEMBER_PROGRAM,
) -> RunReport:
    """Run one seed in a fresh temporary directory; write ``seed-<n>.json`` to
    ``report_dir`` (default: that directory) and keep the directory if the run failed.

    :param config: what to run.
    :param report_dir: where the JSON report goes.
    :param keep: keep the data directories and logs even when the run passed.
    :param program: the command that runs one member.
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"replobj-nemesis-{config.seed}-"))
    report = anyio.run(arun, config, workdir, program)
    target = (report_dir or workdir) / f"seed-{config.seed}.json"
    if report.plot and report_dir is not None:
        plot = report_dir / f"seed-{config.seed}-latency.png"
        report_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(report.plot, plot)
        report = dataclasses.replace(report, plot=str(plot))
    if report_dir is not None or not report.ok or keep:
        report.write(target)
    if report.ok and not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return report
