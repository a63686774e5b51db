"""Messages exchanged between Raft nodes.

Every message carries the sender's ``term`` and id. The transport encodes them
with its own binary codec; the core never serialises anything. A message may be
lost, duplicated, delayed or reordered: the core tolerates all of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from .types import Entry, LogIndex, NodeId, SnapshotMeta, Term


@dataclass(frozen=True, slots=True)
class RequestVote:
    """Ask for a vote (§5.2) or, with ``pre_vote``, whether one would be granted (thesis §9.6).

    For a pre-vote ``term`` is the term the sender *would* campaign in; its own term is
    unchanged. ``transfer`` marks an election started by a leadership transfer
    (thesis §3.10), which voters honour even while they believe a leader is alive.
    """

    term: Term
    sender: NodeId
    last_log_index: LogIndex
    last_log_term: Term
    pre_vote: bool = False
    transfer: bool = False


@dataclass(frozen=True, slots=True)
class RequestVoteReply:
    """Answer to :class:`RequestVote`; ``pre_vote`` echoes the request's flag.

    ``withheld`` says the voter rejoined with an empty or incomplete log and votes for
    nobody until it has caught up; ``last_index`` is the voter's last log index. Both
    only feed the candidate's diagnosis of a stalled election (:class:`ElectionStall`).
    """

    term: Term
    sender: NodeId
    granted: bool
    pre_vote: bool = False
    withheld: bool = False
    last_index: LogIndex = 0


@dataclass(frozen=True, slots=True)
class AppendEntries:
    """Replicate entries and/or assert leadership (paper §5.3).

    ``seq`` is the leader's heartbeat sequence number, echoed in the reply; a quorum
    of echoes at or above a value confirms leadership for the ReadIndex requests
    registered before that value was sent (thesis §6.4).
    """

    term: Term
    sender: NodeId
    prev_index: LogIndex
    prev_term: Term
    entries: tuple[Entry, ...]
    leader_commit: LogIndex
    seq: int = 0


@dataclass(frozen=True, slots=True)
class AppendEntriesReply:
    """Answer to :class:`AppendEntries`.

    On success, ``match_index`` is the highest index the follower holds *durably* and
    knows to match the leader's log. On failure, ``reject_index`` is the rejected
    ``prev_index`` and ``hint_index``/``hint_term`` tell the leader where to resume
    (the follower's last index not beyond ``reject_index``, and its term there).
    """

    term: Term
    sender: NodeId
    success: bool
    match_index: LogIndex = 0
    reject_index: LogIndex = 0
    hint_index: LogIndex = 0
    hint_term: Term = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """One chunk of the leader's snapshot (paper §7), starting at byte ``offset``."""

    term: Term
    sender: NodeId
    meta: SnapshotMeta
    offset: int
    data: bytes
    done: bool
    seq: int = 0


@dataclass(frozen=True, slots=True)
class InstallSnapshotReply:
    """Answer to :class:`InstallSnapshot`.

    ``next_offset`` is the byte the follower expects next (resumable transfer);
    ``done`` means the follower now holds everything up to ``last_index``.
    """

    term: Term
    sender: NodeId
    last_index: LogIndex
    next_offset: int
    done: bool
    seq: int = 0


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Tell the transfer target to campaign at once (thesis §3.10)."""

    term: Term
    sender: NodeId


@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    """A follower asks the leader for a read index on behalf of a local read (thesis §6.4)."""

    term: Term
    sender: NodeId
    request_id: int


@dataclass(frozen=True, slots=True)
class ReadIndexReply:
    """The leader's answer: serve the read once applied index ≥ ``read_index``.

    ``ok`` is false when the leader could not confirm its leadership; the follower
    then fails the read so the caller can retry.
    """

    term: Term
    sender: NodeId
    request_id: int
    read_index: LogIndex
    ok: bool


@dataclass(frozen=True, slots=True)
class ProposeRequest:
    """A follower forwards command payloads to the leader (etcd's proposal forwarding)."""

    term: Term
    sender: NodeId
    request_id: int
    payloads: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ProposeReply:
    """The leader's answer to :class:`ProposeRequest`.

    When ``refusal`` is empty the ``count`` payloads were appended at ``first_index``
    onwards in ``proposal_term``; otherwise ``refusal`` names the
    :class:`~replobj.raft.types.RefusalReason` value.
    """

    term: Term
    sender: NodeId
    request_id: int
    proposal_term: Term
    first_index: LogIndex
    count: int
    refusal: str = ""


Message: TypeAlias = (
    RequestVote
    | RequestVoteReply
    | AppendEntries
    | AppendEntriesReply
    | InstallSnapshot
    | InstallSnapshotReply
    | TimeoutNow
    | ReadIndexRequest
    | ReadIndexReply
    | ProposeRequest
    | ProposeReply
)
"""Every message kind the core sends or accepts."""

MESSAGE_TYPES: tuple[type[Message], ...] = (
    RequestVote,
    RequestVoteReply,
    AppendEntries,
    AppendEntriesReply,
    InstallSnapshot,
    InstallSnapshotReply,
    TimeoutNow,
    ReadIndexRequest,
    ReadIndexReply,
    ProposeRequest,
    ProposeReply,
)


def is_malformed(message: Message) -> bool:
    """True for a message no correct peer sends (a buggy or confused peer must not corrupt us)."""
    if message.term < 0:
        return True
    if isinstance(message, AppendEntries):
        if message.prev_index < 0 or message.prev_term < 0 or message.leader_commit < 0:
            return True
        expected, term = message.prev_index + 1, message.prev_term
        for entry in message.entries:
            if entry.index != expected or entry.term < term or entry.term > message.term:
                return True
            expected, term = expected + 1, entry.term
        return False
    if isinstance(message, InstallSnapshot):
        meta = message.meta
        return message.offset < 0 or meta.last_index < 1 or meta.last_term > message.term
    if isinstance(message, RequestVoteReply):
        return message.last_index < 0
    if isinstance(message, ProposeReply):
        return not message.refusal and (message.first_index < 1 or message.count < 0)
    return False
