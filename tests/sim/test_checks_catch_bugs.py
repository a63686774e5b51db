"""Break a rule of the core on purpose and show that the simulator's checks catch it.

Patches apply to this process only, so seeds run in-process. Random-seed tests stop at
the first failing seed and print it; the scripted schedules (tests/sim/scripted.py)
force one interleaving, first passing on the real core, then failing on the broken one.
Two patches replace private methods of ``RaftNode`` (``_maybe_commit``,
``_follower_ack``): rename them here if the core's internals change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from replobj.raft import ClusterConfig, Entry, LogIndex, NodeId, RaftNode, Role
from replobj.raft import messages as msg
from replobj.raft import node as core_node
from replobj.raft.log import RaftLog
from replobj.sim import SimulationFailure, run_seed

from .scripted import acknowledged_write_survives_crash, figure8, stale_read


def first_failure(seeds: range) -> str:
    """Run ``seeds`` in order until one fails; return its message (fail if none does)."""
    for seed in seeds:
        try:
            run_seed(seed)
        except AssertionError as exc:
            print(f"caught at seed {seed}: {str(exc).splitlines()[0]}")
            return str(exc)
    raise AssertionError(f"no seed in {seeds} caught the injected bug")


def test_voting_for_a_stale_log_breaks_leader_completeness(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(RaftLog, "is_up_to_date", lambda self, index, term: True)
    message = first_failure(range(40))
    assert "Leader Completeness" in message or "State Machine Safety" in message
    assert "replay: .venv/bin/python -m replobj.sim --seed" in message


def test_committing_without_a_majority_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def highest_match(self: ClusterConfig, match: dict[NodeId, LogIndex]) -> LogIndex:
        return max((match.get(v, 0) for v in self.all_voters), default=0)

    monkeypatch.setattr(ClusterConfig, "quorum_index", highest_match)
    message = first_failure(range(40))
    assert any(
        check in message
        for check in ("Leader Completeness", "State Machine Safety", "Log Matching")
    )


def test_skipping_the_log_consistency_check_breaks_log_matching(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = RaftNode.handle_message

    def without_consistency_check(self: RaftNode, message: msg.Message) -> None:
        if isinstance(message, msg.AppendEntries):
            own = self.term_at(message.prev_index)
            if own is not None:
                message = dataclasses.replace(message, prev_term=own)
        original(self, message)

    monkeypatch.setattr(RaftNode, "handle_message", without_consistency_check)
    with pytest.raises(SimulationFailure, match="Log Matching"):
        figure8()


def test_counting_replicas_of_an_old_term_entry_is_caught_in_figure_8(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def commit_by_counting(self: RaftNode) -> None:
        if self.role is not Role.LEADER:
            return
        match = {peer: p.match_index for peer, p in self._progress.items()}
        match[self.id] = self.persisted_index
        index = self.config.quorum_index(match)
        if index > self.commit_index:
            self.commit_index = index
            self._apply_committed()

    cluster, x = figure8()
    assert x not in cluster.checker.payload_index, "a correct core never commits X"
    leader = cluster.leader()
    assert leader is not None
    assert leader.raft.term_at(leader.raft.commit_index) == leader.raft.term
    monkeypatch.setattr(core_node.RaftNode, "_maybe_commit", commit_by_counting)
    with pytest.raises(SimulationFailure, match="Leader Completeness"):
        figure8()


def test_answering_reads_without_a_heartbeat_quorum_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster, rid = stale_read()
    assert rid is not None
    assert rid in cluster.reads, "a deposed leader must not answer"
    assert cluster.stats.reads_ready == 0

    def confirm_everything(self: object, confirmed_seq: int) -> list[object]:
        confirming = self.confirming  # type: ignore[attr-defined]
        ready = list(confirming)
        confirming.clear()
        return ready

    monkeypatch.setattr("replobj.raft.reads.ReadTracker.pop_confirmed", confirm_everything)
    with pytest.raises(SimulationFailure, match="Linearizable read"):
        stale_read()


def test_acknowledging_before_fsync_loses_a_committed_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster, x = acknowledged_write_survives_crash()
    leader = cluster.leader()
    assert leader is not None
    assert leader.storage.written.entry(cluster.checker.payload_index[x]) is not None
    monkeypatch.setattr(RaftNode, "_follower_ack", lambda self: self._verified_index)
    with pytest.raises(SimulationFailure, match="Leader Completeness"):
        acknowledged_write_survives_crash()


def test_keeping_a_truncated_configuration_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    original = RaftLog.append

    def append_without_reverting(self: RaftLog, entries: Sequence[Entry]) -> None:
        before = list(self._configs)
        original(self, entries)
        self._configs = before + [c for c in self._configs if c not in before]

    monkeypatch.setattr(RaftLog, "append", append_without_reverting)
    message = first_failure(range(60))
    assert "Configuration in effect" in message
