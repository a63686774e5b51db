"""The clients of a nemesis run: key-value calls, linearizable and local reads, appends.

Puts and linearizable gets on a few keys go into a :class:`~replobj.testing.HistoryRecorder`
for the checker. Appends of unique strings to the demo store's journal show lost or
duplicated writes. Local reads of the journal are kept per member process, to check that a
replica never goes back.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from ...demo import STORE, MemberError, ProcessCluster
from ..history import HistoryRecorder, Operation

__all__ = [
    "REFUSALS",
    "LocalRead",
    "Workload",
    "local_read_problems",
    "replica_problems",
    "without_unread_unknown_puts",
]

REFUSALS = frozenset(
    {
        "NotLeaderError",
        "NoLeaderError",
        "LeaderNotReadyError",
        "ConfigChangeInProgressError",
        "RaftRefusedError",
    }
)
"""Errors that prove a command was refused before it entered the log."""


@dataclass(frozen=True, slots=True)
class LocalRead:
    """A local read of the journal on one member process.

    :param node: the member.
    :param pid: its process (a restart changes it).
    :param entries: the journal it returned.
    :param call_time: when it was sent (``time.monotonic_ns``).
    :param return_time: when the answer came.
    """

    node: str
    pid: int
    entries: tuple[str, ...]
    call_time: int
    return_time: int


@dataclass(slots=True)
class Workload:
    """Concurrent clients over a :class:`~replobj.demo.ProcessCluster`.

    :param cluster: the members to send through.
    :param rng: chooses operations, keys and members.
    :param keys: how many keys the key-value calls use.
    :param op_timeout: the timeout each call passes to its member.
    :param trust_outcome_known: record a ``CallTimeoutError`` with ``outcome_known=True`` as a
        call that did not apply (left out), rather than as one of unknown outcome.
    """

    cluster: ProcessCluster
    rng: random.Random
    keys: int
    op_timeout: float
    trust_outcome_known: bool = False
    recorder: HistoryRecorder = field(default_factory=HistoryRecorder)
    appends_sent: set[str] = field(default_factory=set)
    appends_acknowledged: set[str] = field(default_factory=set)
    local_reads: list[LocalRead] = field(default_factory=list)
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    appends_refused: dict[str, str] = field(default_factory=dict)
    puts_refused: list[tuple[str, str, str]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    _counter: int = 0

    async def run(self, clients: int, stop: anyio.Event) -> None:
        """Keep ``clients`` clients busy until ``stop`` is set."""
        async with anyio.create_task_group() as tasks:
            for number in range(clients):
                tasks.start_soon(self._client, number, stop)

    async def _client(self, number: int, stop: anyio.Event) -> None:
        generation = 0
        while not stop.is_set():
            members = sorted(self.cluster.members)
            if not members:
                await anyio.sleep(0.05)
                continue
            via = members[number % len(members)]
            client = f"c{number}.{generation}"
            settled = await self._one_call(client, via)
            if not settled:
                generation += 1  # a client with a pending call is a new client from now on

    def _next_value(self) -> str:
        self._counter += 1
        return f"v{self._counter}"

    async def _one_call(self, client: str, via: str) -> bool:
        """One random call through ``via``; ``False`` if its outcome stayed unknown."""
        member = self.cluster.members.get(via)
        if member is None or member.exited.is_set():  # gone, or crashed (a failed disk)
            await anyio.sleep(0.05)
            return True
        choice = self.rng.random()
        key = f"k{self.rng.randrange(self.keys)}"
        if choice < 0.35:
            value = self._next_value()
            token = self.recorder.invoke(client, "put", (key, value))
            try:
                await member.call(STORE, "put", key, value, timeout=self.op_timeout)
            except MemberError as error:
                self._count(error)
                if self._did_not_apply(error):
                    self.recorder.fail(token)
                    self.failed += 1
                    self.puts_refused.append((key, value, str(error)))
                    return True
                self.recorder.unknown(token)
                return False
            self.recorder.ok(token)
            return True
        if choice < 0.7:
            token = self.recorder.invoke(client, "get", key)
            try:
                value = await member.read(STORE, "get", key, timeout=self.op_timeout)
            except MemberError as error:
                self._count(error)
                self.recorder.fail(token)  # a read that failed changed nothing
                self.failed += 1
                return True
            self.recorder.ok(token, value)
            return True
        if choice < 0.85:
            item = f"{via}/{client}/{self._next_value()}"
            self.appends_sent.add(item)
            try:
                await member.call(STORE, "append", item, timeout=self.op_timeout)
            except MemberError as error:
                self._count(error)
                if self._did_not_apply(error):
                    self.appends_refused[item] = str(error)
                    return True
                return False
            self.appends_acknowledged.add(item)
            return True
        await self.local_journal(via)
        return True

    def _count(self, error: MemberError) -> None:
        self.errors[error.kind] = self.errors.get(error.kind, 0) + 1

    def _did_not_apply(self, error: MemberError) -> bool:
        """Whether ``error`` proves the command never applies (see ``trust_outcome_known``)."""
        if error.kind in REFUSALS:
            return True
        timed_out = error.kind == "CallTimeoutError" and error.outcome_known is True
        return self.trust_outcome_known and timed_out

    async def local_journal(self, via: str) -> None:
        """Read ``via``'s journal locally and keep it for the monotonicity check."""
        member = self.cluster.members.get(via)
        if member is None or member.exited.is_set():
            return
        pid = member.pid
        call_time = time.monotonic_ns()
        try:
            entries = await member.local(STORE, "entries")
        except MemberError:
            return
        read = LocalRead(via, pid, tuple(entries), call_time, time.monotonic_ns())
        self.local_reads.append(read)

    async def final_reads(self, via: str) -> None:
        """A linearizable get of every key through ``via``, recorded like the others."""
        member = self.cluster.members[via]
        for number in range(self.keys):
            key = f"k{number}"
            token = self.recorder.invoke("final", "get", key)
            try:
                value = await member.read(STORE, "get", key, timeout=10.0)
            except MemberError as error:
                self.recorder.fail(token)
                self.unexpected.append(f"final read of {key} through {via} failed: {error}")
                continue
            self.recorder.ok(token, value)


def without_unread_unknown_puts(history: Sequence[Operation]) -> list[Operation]:
    """``history`` without the puts of unknown outcome whose value no get returned.

    Every put writes a value nobody else writes, so such a put, if it took effect, was
    overwritten before anyone read its key: dropping it from a linearization leaves a
    linearization. The history is linearizable exactly when the reduced one is, and the
    checker no longer has to try every place for calls that could never matter.
    """
    seen = {(op.input, op.output) for op in history if op.name == "get" and op.outcome_known}
    return [op for op in history if op.name != "put" or op.outcome_known or tuple(op.input) in seen]


def replica_problems(
    journals: dict[str, list[Any]],
    items: dict[str, dict[str, Any]],
    acknowledged: set[str],
    sent: set[str],
    refused: Mapping[str, str] | None = None,
) -> list[str]:
    """Every way the replicas' final states differ, lose an acknowledged append, apply one
    twice, hold one nobody sent or one whose caller was told it did not apply."""
    problems: list[str] = []
    nodes: Sequence[str] = sorted(journals)
    reference = journals[nodes[0]]
    for node in nodes[1:]:
        if journals[node] != reference:
            problems.append(f"{node}'s journal differs from {nodes[0]}'s")
        if items[node] != items[nodes[0]]:
            problems.append(f"{node}'s map differs from {nodes[0]}'s")
    if len(set(reference)) != len(reference):
        problems.append("an append was applied twice")
    lost = acknowledged - set(reference)
    if lost:
        problems.append(f"acknowledged appends lost: {sorted(lost)[:5]}")
    refused = refused or {}
    applied_anyway = sorted(item for item in refused if item in set(reference))
    problems.extend(
        f"append {item} refused as not applied was applied ({refused[item]})"
        for item in applied_anyway[:5]
    )
    unsent = set(reference) - sent
    if unsent:
        problems.append(f"appends nobody sent: {sorted(unsent)[:5]}")
    return problems


def local_read_problems(reads: Sequence[LocalRead], final: tuple[str, ...]) -> list[str]:
    """Local reads must be prefixes of the final journal and, on one member, never shorter
    than a read that returned before they were sent, even across a restart of its process
    (``Node.local_read_ready`` promises that)."""
    problems: list[str] = []
    by_node: dict[str, list[LocalRead]] = {}
    diverged: dict[str, int] = {}
    for read in reads:
        if final[: len(read.entries)] != read.entries:
            diverged[read.node] = diverged.get(read.node, 0) + 1
        by_node.setdefault(read.node, []).append(read)
    problems += [
        f"{count} local reads on {node} are not a prefix of the final journal"
        for node, count in sorted(diverged.items())
    ]
    for node, group in by_node.items():
        for later in group:
            earlier = [r for r in group if r.return_time < later.call_time]
            if not earlier:
                continue
            longest = max(earlier, key=lambda r: len(r.entries))
            if len(later.entries) < len(longest.entries):
                problems.append(
                    f"local reads on {node} went back from {len(longest.entries)} entries "
                    f"(pid {longest.pid}) to {len(later.entries)} (pid {later.pid})"
                )
                break
    return problems
