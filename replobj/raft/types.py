"""Plain value types shared by every part of the Raft core.

Everything here is immutable and carries no behaviour beyond validation and a
few helpers; the rules of the protocol live in the modules that use them.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Final, TypeAlias

NodeId: TypeAlias = str
"""A member's stable name (e.g. ``"a"``); chosen by the user, never reused for another machine."""

Term: TypeAlias = int
"""A Raft term (paper §5.1): grows monotonically, at most one leader per term."""

LogIndex: TypeAlias = int
"""A position in the replicated log; the first entry has index 1, index 0 is "before the log"."""

MAX_TERM: Final = (1 << 63) - 1
"""The largest term a node accepts (from the wire or a store); larger values are malformed."""

MAX_INDEX: Final = (1 << 63) - 1
"""The largest log index a node accepts; larger values are malformed."""

MAX_NODE_ID_BYTES: Final = 255
"""The longest member id, in UTF-8 bytes, that the wire (the TCP hello) can carry."""


class EntryKind(enum.IntEnum):
    """What a log entry carries; only ``COMMAND`` payloads belong to the application."""

    COMMAND = 0
    """Opaque application bytes; the core never decodes them."""
    NOOP = 1
    """The empty entry a new leader appends to commit earlier terms (paper §5.4.2, §8)."""
    CONFIG = 2
    """A cluster configuration (thesis §4.3); the payload is :meth:`ClusterConfig.encode`."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. ``payload`` is opaque to the core for ``COMMAND`` entries."""

    term: Term
    index: LogIndex
    kind: EntryKind = EntryKind.COMMAND
    payload: bytes = b""

    def __post_init__(self) -> None:
        if self.index < 1:
            raise ValueError(f"log entries start at index 1, got {self.index}")
        if self.term < 1:
            raise ValueError(f"log entries have a term of at least 1, got {self.term}")

    @property
    def size(self) -> int:
        """Approximate wire size in bytes, used for the per-message byte limits."""
        return len(self.payload) + 24


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before the node says anything that depends on it (paper Figure 2)."""

    term: Term = 0
    voted_for: NodeId | None = None
    catch_up_to: LogIndex = 0
    """Set once by a node that started to join with an empty store and then heard from a
    leader: the leader's commit index at that moment. Until its durable log reaches it, the
    node neither votes nor campaigns (it may have acknowledged those entries before its disk
    was lost)."""


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Cluster membership (thesis §4): voters, learners and, while joint, the old voters.

    ``old_voters`` is not ``None`` only during a joint-consensus transition
    (C_old,new); then elections and commitment need a majority of ``voters`` *and* a
    majority of ``old_voters``. ``learners`` receive the log but never vote and never
    count toward a quorum. ``auto_promote`` lists learners the leader will promote to
    voters once they have caught up.
    """

    voters: frozenset[NodeId] = frozenset()
    learners: frozenset[NodeId] = frozenset()
    old_voters: frozenset[NodeId] | None = None
    auto_promote: frozenset[NodeId] = field(default=frozenset())

    def __post_init__(self) -> None:
        both = self.voters & self.learners
        if both:
            raise ValueError(f"a node cannot be voter and learner at once: {sorted(both)}")
        if not self.auto_promote <= self.learners:
            raise ValueError("auto_promote must be a subset of learners")
        if self.old_voters is not None and self.old_voters & self.learners:
            raise ValueError("a learner cannot be an outgoing voter")

    @property
    def is_joint(self) -> bool:
        """True during C_old,new (thesis §4.3)."""
        return self.old_voters is not None

    @property
    def all_voters(self) -> frozenset[NodeId]:
        """Every node whose vote or acknowledgement can count, old and new."""
        if self.old_voters is None:
            return self.voters
        return self.voters | self.old_voters

    @property
    def members(self) -> frozenset[NodeId]:
        """Every node that receives the log: voters (old and new) and learners."""
        return self.all_voters | self.learners

    def is_voter(self, node: NodeId) -> bool:
        """Whether ``node``'s vote or acknowledgement counts in this configuration."""
        return node in self.all_voters

    def has_quorum(self, acks: set[NodeId] | frozenset[NodeId]) -> bool:
        """True when ``acks`` hold a majority of voters (and of old voters while joint)."""
        if not _majority(self.voters, acks):
            return False
        return self.old_voters is None or _majority(self.old_voters, acks)

    def quorum_index(self, match: dict[NodeId, LogIndex]) -> LogIndex:
        """The highest index replicated on a quorum, given each voter's match index."""
        index = _quorum_index(self.voters, match)
        if self.old_voters is not None:
            index = min(index, _quorum_index(self.old_voters, match))
        return index

    def encode(self) -> bytes:
        """Serialise for a ``CONFIG`` entry or a snapshot (stable, JSON, sorted)."""
        doc: dict[str, object] = {
            "voters": sorted(self.voters),
            "learners": sorted(self.learners),
            "auto_promote": sorted(self.auto_promote),
        }
        if self.old_voters is not None:
            doc["old_voters"] = sorted(self.old_voters)
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> ClusterConfig:
        """Inverse of :meth:`encode`; raises ``ValueError`` on malformed data."""
        try:
            doc = json.loads(data)
            old = doc.get("old_voters")
            return cls(
                voters=frozenset(_names(doc["voters"])),
                learners=frozenset(_names(doc["learners"])),
                old_voters=None if old is None else frozenset(_names(old)),
                auto_promote=frozenset(_names(doc.get("auto_promote", []))),
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"malformed cluster configuration: {data[:80]!r}") from exc


def _names(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of node names")
    return value


def _majority(voters: frozenset[NodeId], acks: set[NodeId] | frozenset[NodeId]) -> bool:
    if not voters:
        return False
    return len(voters & acks) * 2 > len(voters)


def _quorum_index(voters: frozenset[NodeId], match: dict[NodeId, LogIndex]) -> LogIndex:
    if not voters:
        return 0
    indexes = sorted((match.get(v, 0) for v in voters), reverse=True)
    return indexes[len(indexes) // 2]


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Describes a snapshot: the last entry it covers and the configuration at that entry.

    A brand-new cluster starts from the empty snapshot ``(0, 0, initial_config)``.
    """

    last_index: LogIndex = 0
    last_term: Term = 0
    config: ClusterConfig = field(default_factory=ClusterConfig)


@dataclass(frozen=True, slots=True)
class ProposalId:
    """Identifies a proposed entry: the leader's term and the index it was given."""

    term: Term
    index: LogIndex


class ProposalStatus(enum.Enum):
    """Fate of a proposal as known to this node (see :meth:`RaftNode.proposal_status`)."""

    PENDING = "pending"
    """Not yet known to be committed or superseded; ask again later."""
    COMMITTED = "committed"
    """The entry is committed at its index and will be applied everywhere."""
    REJECTED = "rejected"
    """Another entry was committed at that index; the proposal will never apply."""
    UNKNOWN = "unknown"
    """The index was compacted into a snapshot; the caller must have seen it applied or not."""


class Role(enum.Enum):
    """A node's role (paper §5.1, plus pre-candidate from thesis §9.6)."""

    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class RefusalReason(enum.Enum):
    """Why the core refused a request; see :class:`Refusal`."""

    NOT_LEADER = "not-leader"
    NO_LEADER = "no-leader"
    LEADER_NOT_READY = "leader-not-ready"
    CONFIG_CHANGE_IN_PROGRESS = "config-change-in-progress"
    INVALID_CONFIG_CHANGE = "invalid-config-change"
    TRANSFER_IN_PROGRESS = "transfer-in-progress"
    INVALID_ARGUMENT = "invalid-argument"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the core declined without changing any state.

    Returned (not raised) by the core's input methods, in the sans-I/O style of
    raftbare; :func:`replobj.errors.error_for_refusal` turns it into an exception.
    """

    reason: RefusalReason
    message: str
    leader: NodeId | None = None

    def __bool__(self) -> bool:
        return False
