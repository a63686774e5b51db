"""What a nemesis run is asked to do and what it found: configuration, faults, report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ALL_FAULT_KINDS",
    "FAULT_KINDS",
    "POWER_KINDS",
    "FaultEvent",
    "RunConfig",
    "RunReport",
    "format_table",
]

FAULT_KINDS = (
    "kill",
    "pause",
    "partition",
    "bridge",
    "one-way",
    "loss",
    "delay",
    "membership",
    "combined",
    "power",
    "power-all",
    "disk",
)
"""Every fault the nemesis injects: ``kill`` (SIGKILL, then restart from the data directory),
``pause`` (SIGSTOP for longer than the election timeout, then SIGCONT), the network faults
of :data:`~replobj.testing.nemesis.network.NET_FAULT_KINDS` (``partition``, ``bridge``,
``one-way``, ``loss``, ``delay``), ``membership`` (replace a member: remove the leader or a
follower, then add a fresh one) and ``combined`` (two at once: a kill and a pause, a
partition and a kill on the majority side, or a replacement over lossy links), ``power``
(a minority loses power: process and filesystem die together, unsynced writes are gone;
see :mod:`~replobj.testing.nemesis.power`), ``power-all`` (every member loses power at
once) and ``disk`` (a member's fsyncs fail with EIO until it stops, then it restarts; see
:mod:`~replobj.testing.nemesis.disk`)."""

ALL_FAULT_KINDS = (*FAULT_KINDS, "wipe")
""":data:`FAULT_KINDS` plus the kinds a run injects only when asked (``--faults``):
``wipe`` (SIGKILL a member, delete its data directory, restart it under its id with
``join=True``, as docs/operations.md prescribes after a lost disk)."""

POWER_KINDS = ("power", "power-all", "disk")
"""The faults that need members' data on power-loss mounts (root and ``/dev/fuse``)."""


@dataclass(frozen=True, slots=True)
class RunConfig:
    """One seeded run.

    :param seed: seeds the fault schedule and the clients' choices (timing stays real).
    :param nodes: how many members the cluster starts with (3 or 5).
    :param transport: the members' transport, ``"tcp"`` or ``"udp"``.
    :param duration: seconds of client load while faults run.
    :param backend: the anyio backend of the member processes.
    :param clients_per_member: concurrent clients sending through each member.
    :param keys: how many keys the key-value clients use.
    :param election_timeout: the members' election timeout in seconds.
    :param op_timeout: the timeout every client call passes to its member.
    :param faults: which of :data:`FAULT_KINDS` to inject.
    :param check_budget: seconds the linearizability checker may search.
    :param trust_outcome_known: treat a timeout whose ``outcome_known`` is true as proof
        that the call did not apply (holds the library to that promise; the default).
    """

    seed: int
    nodes: int = 3
    transport: str = "tcp"
    duration: float = 12.0
    backend: str = "asyncio"
    clients_per_member: int = 2
    keys: int = 5
    election_timeout: float = 0.4
    op_timeout: float = 2.0
    faults: tuple[str, ...] = FAULT_KINDS
    check_budget: float = 30.0
    trust_outcome_known: bool = True


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """One injected fault.

    :param kind: one of :data:`FAULT_KINDS`.
    :param target: the member it hit (``"n2->n4"`` for a replacement).
    :param role: ``"leader"`` or ``"follower"`` when it was injected.
    :param start: seconds after the load started.
    :param end: seconds after the load started, once healed.
    :param note: anything that went differently (e.g. a retried membership change).
    """

    kind: str
    target: str
    role: str
    start: float
    end: float
    note: str = ""


@dataclass(frozen=True, slots=True)
class RunReport:
    """Everything a run found; :attr:`ok` only if every check held.

    :param seed: the run's seed.
    :param backend: the members' anyio backend.
    :param faults: the faults injected, in order.
    :param operations: key-value operations checked for linearizability.
    :param unknown_outcome: how many of them had an unknown outcome.
    :param unread_unknown_dropped: unknown-outcome puts whose value nobody read, left out
        of the check (see ``without_unread_unknown_puts``).
    :param errors: how many client calls failed, by the member's error type.
    :param failed: calls left out of the history: failed gets and refused puts.
    :param appends_acknowledged: acknowledged appends (each must be on every replica).
    :param local_reads: local reads checked for monotonicity.
    :param verdict: the checker's outcome (``linearizable``, ``not linearizable``, ``unknown``).
    :param problems: every failed check, explained; empty when :attr:`ok`.
    :param elapsed: wall-clock seconds of the whole run.
    :param workdir: where the members' data and logs were (kept when the run failed).
    :param explanation: the checker's explanation when the history was not linearizable.
    :param trust_outcome_known: whether timeouts with ``outcome_known=True`` counted as
        calls that did not apply.
    :param nodes: how many members the cluster started with.
    :param plot: the latency-over-time PNG, if matplotlib was there to draw it.
    :param transport: the members' transport.
    """

    seed: int
    backend: str
    faults: tuple[FaultEvent, ...]
    operations: int
    unknown_outcome: int
    unread_unknown_dropped: int
    errors: dict[str, int]
    failed: int
    appends_acknowledged: int
    local_reads: int
    verdict: str
    problems: tuple[str, ...]
    elapsed: float
    workdir: str
    explanation: str = field(default="")
    trust_outcome_known: bool = False
    nodes: int = 3
    plot: str = ""
    transport: str = "tcp"

    @property
    def ok(self) -> bool:
        """Whether the history was linearizable and every other check held."""
        return self.verdict == "linearizable" and not self.problems

    def fault_summary(self) -> str:
        """``kill:2 pause:1 membership:1`` (kinds that did not occur are left out)."""
        counts = dict.fromkeys(FAULT_KINDS, 0)
        for fault in self.faults:
            counts[fault.kind] = counts.get(fault.kind, 0) + 1
        return " ".join(f"{kind}:{count}" for kind, count in counts.items() if count)

    def summary(self) -> str:
        """One line: seed, faults, operations, unknown outcomes, verdict, problems."""
        status = "OK" if self.ok else "FAIL"
        line = (
            f"seed {self.seed} [{self.backend}, {self.nodes} nodes, {self.transport}] {status}: "
            f"faults {self.fault_summary()}; "
            f"{self.operations} ops ({self.unknown_outcome} unknown, {self.failed} left out), "
            f"{self.appends_acknowledged} acked appends, {self.local_reads} local reads; "
            f"{self.verdict}; {self.elapsed:.1f} s"
        )
        if self.problems:
            line += "; problems: " + " | ".join(self.problems)
        return line

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (with ``ok``)."""
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def write(self, path: Path) -> None:
        """Write the report as indented JSON to ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


def format_table(reports: Sequence[RunReport]) -> str:
    """A Markdown table: one row per run, then the totals."""
    header = (
        "| seed | nodes | backend | transport | faults | operations | unknown | acked appends "
        "| verdict | checks |"
    )
    lines = [header, "|---" * 10 + "|"]
    for report in reports:
        checks = "all held" if not report.problems else f"{len(report.problems)} failed"
        lines.append(
            f"| {report.seed} | {report.nodes} | {report.backend} | {report.transport} | "
            f"{report.fault_summary()} | "
            f"{report.operations} | {report.unknown_outcome} | "
            f"{report.appends_acknowledged} | {report.verdict} | {checks} |"
        )
    faults = sum(len(r.faults) for r in reports)
    operations = sum(r.operations for r in reports)
    unknown = sum(r.unknown_outcome for r in reports)
    passed = sum(r.ok for r in reports)
    lines.append(
        f"| **{len(reports)} runs** | | | | {faults} faults | {operations} | {unknown} | "
        f"{sum(r.appends_acknowledged for r in reports)} | {passed} passed | |"
    )
    return "\n".join(lines)
