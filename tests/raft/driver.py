"""What a correct driver stores for one node, and the contract checks it applies.

:class:`Store` is one node's simulated durable storage plus a toy state machine (the
list of applied command payloads). The ``check_*`` functions raise
:class:`ContractViolation` when an action breaks an obligation documented in
``replobj/raft/actions.py``; the harness runs them on every action of every test.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from replobj.raft import (
    Action,
    AppendLog,
    ApplyEntries,
    ClusterConfig,
    Entry,
    EntryKind,
    HardState,
    LogIndex,
    NodeId,
    ProposalFailed,
    ProposalForwarded,
    RaftNode,
    ReadFailed,
    ReadReady,
    RestoredState,
    SaveHardState,
    Send,
    SnapshotMeta,
    Term,
    TimerKind,
    WriteSnapshotChunk,
)
from replobj.raft import messages as msg


class ContractViolation(AssertionError):
    """The core asked its driver for something the documented contract forbids."""


@dataclass(slots=True)
class Store:
    """One node's simulated durable storage and state machine."""

    hard_state: HardState = field(default_factory=HardState)
    log: dict[LogIndex, Entry] = field(default_factory=dict)
    snapshot: SnapshotMeta = field(default_factory=SnapshotMeta)
    snapshot_data: bytes = b""
    staged_meta: SnapshotMeta | None = None
    staged_data: bytes = b""
    pending: list[AppendLog] = field(default_factory=list)
    applied: list[Entry] = field(default_factory=list)
    applied_index: LogIndex = 0
    state_machine: list[tuple[LogIndex, bytes]] = field(default_factory=list)
    reads: list[ReadReady | ReadFailed] = field(default_factory=list)
    forwarded: list[ProposalForwarded | ProposalFailed] = field(default_factory=list)
    trace: list[Action] = field(default_factory=list)
    timer: TimerKind | None = None

    def durable_last_index(self) -> LogIndex:
        """Highest index held durably (log or snapshot)."""
        return max([self.snapshot.last_index, *self.log])

    def durable_entries(self) -> tuple[Entry, ...]:
        """Durable entries after the snapshot, in index order."""
        return tuple(self.log[i] for i in sorted(self.log) if i > self.snapshot.last_index)


def encode_state(state: Sequence[tuple[LogIndex, bytes]]) -> bytes:
    """Serialise the toy state machine (applied commands) as snapshot bytes."""
    return json.dumps([[index, payload.hex()] for index, payload in state]).encode()


def decode_state(data: bytes) -> list[tuple[LogIndex, bytes]]:
    """Inverse of :func:`encode_state`."""
    if not data:
        return []
    return [(int(index), bytes.fromhex(text)) for index, text in json.loads(data)]


def save_hard_state(node_id: NodeId, store: Store, action: SaveHardState) -> None:
    """Persist term and vote; the term never decreases and a vote never changes in a term."""
    old = store.hard_state
    if action.term < old.term:
        raise ContractViolation(f"{node_id}: term went back {old.term} -> {action.term}")
    if action.term == old.term and old.voted_for is not None and action.voted_for != old.voted_for:
        raise ContractViolation(f"{node_id}: vote changed within term {old.term}: {action}")
    store.hard_state = action.hard_state


def check_append(node_id: NodeId, action: AppendLog) -> None:
    """An append is non-empty, contiguous, with non-decreasing terms."""
    entries = action.entries
    if not entries:
        raise ContractViolation(f"{node_id}: empty AppendLog")
    for before, after in itertools.pairwise(entries):
        if after.index != before.index + 1 or after.term < before.term:
            raise ContractViolation(f"{node_id}: non-contiguous AppendLog {action}")


def check_send(node: RaftNode, store: Store, action: Send) -> None:
    """A message leaves only after the term and vote it depends on are saved (Figure 2),
    and a success reply acknowledges only durable entries (pitfall 4)."""
    node_id = node.id
    message = action.message
    saved = store.hard_state
    pre_vote = isinstance(message, msg.RequestVote | msg.RequestVoteReply) and message.pre_vote
    if message.sender != node_id:
        raise ContractViolation(f"{node_id}: sends as {message.sender}: {message}")
    if not pre_vote and message.term > saved.term:
        raise ContractViolation(f"{node_id}: sent {message} before saving its term ({saved})")
    voted = (saved.voted_for, saved.term)
    if (
        isinstance(message, msg.RequestVoteReply)
        and message.granted
        and not pre_vote
        and voted != (action.to, message.term)
    ):
        raise ContractViolation(f"{node_id}: granted vote before saving it: {saved}")
    if isinstance(message, msg.RequestVote) and not pre_vote and voted != (node_id, message.term):
        raise ContractViolation(f"{node_id}: campaigned before saving own vote: {saved}")
    if isinstance(message, msg.AppendEntriesReply) and message.success:
        check_ack_durable(node, store, message.match_index)


def check_ack_durable(node: RaftNode, store: Store, match: LogIndex) -> None:
    """Index ``match`` is durable here, with the term the node's log has for it."""
    if match <= store.snapshot.last_index:
        return
    entry = store.log.get(match)
    node_term = node.term_at(match)
    if entry is None or (node_term is not None and entry.term != node_term):
        raise ContractViolation(
            f"{node.id}: acknowledged index {match} that is not durable "
            f"(durable last {store.durable_last_index()}, pending {len(store.pending)})"
        )


def apply_entries(node: RaftNode, store: Store, action: ApplyEntries) -> None:
    """Apply committed entries: consecutive, never repeated, never beyond the commit index."""
    for entry in action.entries:
        if entry.index != store.applied_index + 1:
            raise ContractViolation(f"{node.id}: applied {entry.index} after {store.applied_index}")
        if entry.index > node.commit_index:
            raise ContractViolation(f"{node.id}: applied {entry} beyond commit")
        store.applied_index = entry.index
        store.applied.append(entry)
        if entry.kind is EntryKind.COMMAND:
            store.state_machine.append((entry.index, entry.payload))


def stage_chunk(node_id: NodeId, store: Store, action: WriteSnapshotChunk) -> None:
    """Stage a snapshot chunk; offset 0 restarts, other chunks must extend what is staged."""
    if action.offset == 0:
        store.staged_meta = action.meta
        store.staged_data = b""
    if store.staged_meta != action.meta or action.offset != len(store.staged_data):
        raise ContractViolation(
            f"{node_id}: chunk at {action.offset} does not extend staged "
            f"{store.staged_meta} of {len(store.staged_data)} bytes"
        )
    store.staged_data += action.data


M = TypeVar("M")


def sent(actions: Iterable[Action], kind: type[M], to: NodeId | None = None) -> list[M]:
    """The messages of ``kind`` among ``actions``' sends (optionally only those to ``to``)."""
    return [
        a.message
        for a in actions
        if isinstance(a, Send) and isinstance(a.message, kind) and (to is None or a.to == to)
    ]


def of_type(actions: Iterable[Action], kind: type[M]) -> list[M]:
    """The actions of ``kind``."""
    return [a for a in actions if isinstance(a, kind)]


def log_of(*terms: Term) -> tuple[Entry, ...]:
    """Entries 1..n with the given terms (small command payloads naming the term)."""
    return tuple(Entry(term=t, index=i + 1, payload=b"t%d" % t) for i, t in enumerate(terms))


def restored(
    voters: Iterable[NodeId],
    *terms: Term,
    term: Term | None = None,
    voted_for: NodeId | None = None,
) -> RestoredState:
    """A durable state of a member of ``voters`` holding entries with ``terms``."""
    config = ClusterConfig(voters=frozenset(voters))
    hard = HardState(max(terms, default=0) if term is None else term, voted_for)
    return RestoredState(hard, SnapshotMeta(config=config), log_of(*terms))
