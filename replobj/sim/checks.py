"""Raft's safety properties (paper Figure 3), checked as the simulation runs.

Every check is incremental so it can run after every delivered event:

- Election Safety: at most one leader per term over the whole history.
- Log Matching: an ``(index, term)`` pair always names the same entry, and is always
  preceded by the same term; by induction two logs sharing an entry share the prefix.
- Leader Completeness: a new leader holds every entry committed in an earlier term.
- State Machine Safety: every node applies the same entry at each index, in order,
  never skipping or repeating; snapshots carry the digest of the same prefix.
- Commit index never decreases within one incarnation of a node.
- Linearizable reads: a read index covers every commit observed before the read began.
"""

from __future__ import annotations

from replobj.raft import ClusterConfig, Entry, EntryKind, LogIndex, NodeId, Role, SnapshotMeta, Term

from .simnode import SimNode


class SafetyViolation(AssertionError):
    """A Raft safety property was broken; ``check`` names it."""

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(f"{check}: {detail}")
        self.check = check
        self.detail = detail


class SafetyChecker:
    """Accumulates what the cluster has committed and checks every new observation against it."""

    def __init__(self) -> None:
        self.leaders: dict[Term, NodeId] = {}
        self.chosen: dict[LogIndex, Entry] = {}
        self.commit_term: dict[LogIndex, Term] = {}
        self.max_commit: LogIndex = 0
        self.payload_index: dict[bytes, LogIndex] = {}
        self.digest_at: dict[LogIndex, bytes] = {0: bytes(16)}
        self.entry_at: dict[tuple[LogIndex, Term], Entry] = {}
        self.prev_term_of: dict[tuple[LogIndex, Term], Term] = {}
        self.checks_run = 0

    def on_append(self, node: SimNode, entries: tuple[Entry, ...], prev_term: Term | None) -> None:
        """Log Matching, incrementally: each appended entry against every earlier sighting."""
        previous_index = entries[0].index - 1
        for entry in entries:
            if entry.index != previous_index + 1:
                raise SafetyViolation(
                    "Log Matching", f"{node.id} appended a non-contiguous batch at {entry.index}"
                )
            key = (entry.index, entry.term)
            seen = self.entry_at.setdefault(key, entry)
            if seen != entry:
                raise SafetyViolation(
                    "Log Matching",
                    f"{node.id} holds {entry} but another log holds {seen} at the same index/term",
                )
            if prev_term is not None:
                if prev_term > entry.term:
                    raise SafetyViolation(
                        "Log Matching", f"{node.id}: term decreases before {entry.index}"
                    )
                before = self.prev_term_of.setdefault(key, prev_term)
                if before != prev_term:
                    raise SafetyViolation(
                        "Log Matching",
                        f"{node.id}: entry ({entry.index}, {entry.term}) follows term {prev_term} "
                        f"here but term {before} in another log",
                    )
            prev_term = entry.term
            previous_index = entry.index

    def on_apply(self, node: SimNode, entry: Entry) -> None:
        """State Machine Safety: in-order application of the one committed entry per index."""
        if entry.index != node.last_applied + 1:
            raise SafetyViolation(
                "State Machine Safety",
                f"{node.id} applied index {entry.index} after {node.last_applied} "
                "(skipped or repeated)",
            )
        node.last_applied = entry.index
        self._choose(node, entry)

    def after_apply(self, node: SimNode) -> None:
        """Record or compare the state-machine digest at the node's applied index."""
        machine = node.machine
        seen = self.digest_at.setdefault(machine.applied_index, machine.digest)
        if seen != machine.digest:
            raise SafetyViolation(
                "State Machine Safety",
                f"{node.id}'s state after index {machine.applied_index} differs from another's",
            )

    def on_snapshot_restored(
        self, node: SimNode, meta: SnapshotMeta, *, installed: bool = False
    ) -> None:
        """A snapshot (installed or restarted from) must hold the committed prefix it claims.

        An installed snapshot must not take the state machine back (paper §7: a snapshot
        older than what the follower holds is ignored).
        """
        machine = node.machine
        if installed and meta.last_index < node.last_applied:
            raise SafetyViolation(
                "State Machine Safety",
                f"{node.id} installed snapshot {meta.last_index} after applying "
                f"{node.last_applied}",
            )
        if machine.applied_index != meta.last_index:
            raise SafetyViolation(
                "State Machine Safety",
                f"{node.id}: snapshot bytes are of index {machine.applied_index}, "
                f"meta says {meta.last_index}",
            )
        chosen = self.chosen.get(meta.last_index)
        if chosen is not None and chosen.term != meta.last_term:
            raise SafetyViolation(
                "State Machine Safety",
                f"{node.id}: snapshot meta {meta} disagrees with committed entry {chosen}",
            )
        self.after_apply(node)
        node.last_applied = meta.last_index

    def observe(self, node: SimNode) -> None:
        """Per-event checks of one node after it processed an input and its actions."""
        self.checks_run += 1
        raft = node.raft
        if raft.role is Role.LEADER:
            term = raft.term
            holder = self.leaders.setdefault(term, node.id)
            if holder != node.id:
                raise SafetyViolation(
                    "Election Safety", f"{holder} and {node.id} both led term {term}"
                )
            if node.leader_term != term:
                node.leader_term = term
                self.check_leader_complete(node)
        storage = node.storage
        if (
            raft.last_index != storage.written.last_index
            and raft.snapshot.last_index == storage.snapshot_meta.last_index
        ):
            raise SafetyViolation(
                "AppendLog contract",
                f"{node.id}'s log ends at {raft.last_index} but its AppendLog actions wrote "
                f"up to {storage.written.last_index}",
            )
        commit = raft.commit_index
        if commit < node.last_commit:
            raise SafetyViolation(
                "Commit monotonic", f"{node.id}'s commit index fell {node.last_commit} -> {commit}"
            )
        if commit > node.last_commit:
            self._record_commits(node, node.last_commit + 1, commit)
            node.last_commit = commit
        if node.last_applied > commit:
            raise SafetyViolation(
                "State Machine Safety",
                f"{node.id} applied {node.last_applied} beyond its commit index {commit}",
            )

    def _record_commits(self, node: SimNode, low: LogIndex, high: LogIndex) -> None:
        log = node.storage.written
        if high > log.last_index:
            raise SafetyViolation(
                "Commit within log",
                f"{node.id}'s commit index {high} is beyond its last index {log.last_index}",
            )
        term = node.raft.term
        for index in range(max(low, log.base + 1), high + 1):
            entry = log.entries[index - log.base - 1]
            self._choose(node, entry)
            self.commit_term.setdefault(index, term)
        if high > self.max_commit:
            self.max_commit = high

    def _choose(self, node: SimNode, entry: Entry) -> None:
        chosen = self.chosen.setdefault(entry.index, entry)
        if chosen != entry:
            raise SafetyViolation(
                "State Machine Safety",
                f"{node.id} committed/applied {_short(entry)} where another node has "
                f"{_short(chosen)}",
            )
        if chosen is entry and entry.kind is EntryKind.COMMAND:
            first = self.payload_index.setdefault(entry.payload, entry.index)
            if first != entry.index:
                raise SafetyViolation(
                    "State Machine Safety",
                    f"payload {entry.payload!r} committed twice, at {first} and {entry.index}",
                )

    def check_leader_complete(self, node: SimNode) -> None:
        """Leader Completeness: the leader's log holds every entry committed in an earlier term."""
        log = node.storage.written
        term = node.raft.term
        for index in range(log.base + 1, self.max_commit + 1):
            committed_in = self.commit_term.get(index)
            if committed_in is None or committed_in >= term:
                continue
            held = log.entry(index)
            if held != self.chosen[index]:
                raise SafetyViolation(
                    "Leader Completeness",
                    f"{node.id} leads term {term} without committed entry "
                    f"{_short(self.chosen[index])} (holds {held})",
                )

    def check_logs_match(self, nodes: list[SimNode]) -> None:
        """Log Matching, pairwise over whole logs: below a shared (index, term), logs agree."""
        for position, first in enumerate(nodes):
            for second in nodes[position + 1 :]:
                a, b = first.storage.written, second.storage.written
                low, high = max(a.base, b.base) + 1, min(a.last_index, b.last_index)
                shared = next(
                    (i for i in range(high, low - 1, -1) if a.term_at(i) == b.term_at(i)), None
                )
                if shared is None:
                    continue
                for index in range(low, shared + 1):
                    if a.entry(index) != b.entry(index):
                        raise SafetyViolation(
                            "Log Matching",
                            f"{first.id} and {second.id} share entry {shared} but differ at "
                            f"{index}",
                        )

    def check_config(self, node: SimNode) -> None:
        """The configuration in effect is the latest one in the log (thesis §4.1).

        It takes effect when appended, not when committed, and reverts when its entry
        is truncated; without a configuration entry it is the snapshot's.
        """
        storage = node.storage
        if node.raft.snapshot.last_index != storage.snapshot_meta.last_index:
            return
        expected = storage.snapshot_meta.config
        for entry in reversed(storage.written.entries):
            if entry.kind is EntryKind.CONFIG:
                expected = ClusterConfig.decode(entry.payload)
                break
        if node.raft.config != expected:
            raise SafetyViolation(
                "Configuration in effect",
                f"{node.id} uses [{_config_text(node.raft.config)}] but its log's latest "
                f"configuration is [{_config_text(expected)}]",
            )

    def check_read(self, node: SimNode, read_index: LogIndex, required: LogIndex) -> None:
        """Linearizable read: the index must cover all commits seen before the read began."""
        if read_index < required:
            raise SafetyViolation(
                "Linearizable read",
                f"{node.id} answered a read at index {read_index} but index {required} was "
                "already committed when the read was requested",
            )


def _short(entry: Entry) -> str:
    return f"({entry.index}, t{entry.term}, {entry.kind.name}, {entry.payload[:24]!r})"


def _config_text(config: ClusterConfig) -> str:
    text = "voters " + ",".join(sorted(config.voters))
    if config.learners:
        text += "; learners " + ",".join(sorted(config.learners))
    if config.old_voters is not None:
        text += "; old voters " + ",".join(sorted(config.old_voters))
    return text
