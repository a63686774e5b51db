"""Read-only views of a node's state, for status tables, logs and tests."""

from __future__ import annotations

from dataclasses import dataclass

from .types import ClusterConfig, LogIndex, NodeId, Role, Term


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """The leader's view of one follower's replication."""

    match_index: LogIndex
    next_index: LogIndex
    state: str
    """``"probe"``, ``"replicate"`` or ``"snapshot"``."""
    inflight: int


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A copy of a node's protocol state, for status tables and tests."""

    id: NodeId
    role: Role
    term: Term
    leader: NodeId | None
    commit_index: LogIndex
    applied_index: LogIndex
    last_index: LogIndex
    persisted_index: LogIndex
    snapshot_index: LogIndex
    config: ClusterConfig
    peers: dict[NodeId, PeerStatus]
    stalled: ElectionStall | None = None
    """Why this node cannot be elected (voters withhold their votes), or ``None``."""


@dataclass(frozen=True, slots=True)
class ElectionStall:
    """An election that cannot be won: too many voters withhold their votes.

    A voter withholds while it rejoined with an empty or incomplete log and has not yet
    caught up to the commit index a leader told it (``RaftNode._vote_withheld``). If
    those voters leave no quorum among the rest, no election can succeed until they catch
    up, and if the only members that held the entries they miss were wiped, they never
    will: a majority may have lost acknowledged entries, which no algorithm recovers.

    :param term: the term the stalled (pre-)candidate stands for.
    :param withholding: each withholding voter and its last log index.
    :param survivors: each voter known to vote normally (this node included) and its last
        log index; voters that did not answer are absent.
    """

    term: Term
    withholding: dict[NodeId, LogIndex]
    survivors: dict[NodeId, LogIndex]

    @property
    def most_up_to_date(self) -> NodeId:
        """The survivor with the longest log (ties: the smallest id)."""
        return max(sorted(self.survivors), key=lambda node: self.survivors[node])

    def describe(self) -> str:
        """One paragraph for a log or a status page: what happened and what to do."""
        withholding = ", ".join(
            f"{n} (last index {i})" for n, i in sorted(self.withholding.items())
        )
        survivors = ", ".join(f"{n} (last index {i})" for n, i in sorted(self.survivors.items()))
        best = self.most_up_to_date
        return (
            f"no leader can be elected for term {self.term}: voters {withholding} rejoined "
            f"with an empty or incomplete log and withhold their votes until a leader brings "
            f"them up to date, and the other voters ({survivors}) are no quorum. If the "
            f"members that held the missing entries were wiped too, the cluster will wait "
            f"forever and entries acknowledged only by them are lost. To recover, stop every "
            f"member, restart {best} (the most up-to-date survivor) with "
            f"force_new_cluster=True, then restart the others on empty data directories "
            f"with join=True and add them back with add_member (docs/operations.md, "
            f"'Disaster recovery: a stalled cluster')."
        )
