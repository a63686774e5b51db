"""The simulator's own building blocks: storage durability, network partitions, the demo."""

from __future__ import annotations

import random

import pytest

from replobj.raft import Entry, HardState, RaftOptions, RestoredState, SnapshotMeta
from replobj.sim.checks import SafetyChecker, SafetyViolation
from replobj.sim.demo import run_demo
from replobj.sim.machine import HashChainMachine, SnapshotFormatError
from replobj.sim.network import Network, NetworkFaults, split_links
from replobj.sim.simnode import SimNode
from replobj.sim.storage import SimStorage, StorageContractError


def entries(first: int, last: int, term: int) -> tuple[Entry, ...]:
    return tuple(Entry(term, i, payload=b"x%d" % i) for i in range(first, last + 1))


def test_crash_loses_unsynced_appends_but_keeps_synced_ones() -> None:
    storage = SimStorage(RestoredState.bootstrap({"a"}))
    storage.hard_state = HardState(2, "a")
    first = storage.append(entries(1, 3, 1))
    storage.append(entries(3, 5, 2))
    assert [op.seq for op in storage.sync_through(first)] == [first]
    storage.crash()
    restored = storage.restored_state()
    assert restored.hard_state == HardState(2, "a")
    assert [e.index for e in restored.entries] == [1, 2, 3]
    assert all(e.term == 1 for e in restored.entries)


def test_truncation_becomes_durable_only_with_its_fsync() -> None:
    storage = SimStorage(RestoredState.bootstrap({"a"}))
    storage.sync_through(storage.append(entries(1, 4, 1)))
    storage.append(entries(2, 2, 3))
    assert storage.written.last_index == 2
    storage.crash()
    assert storage.restored_state().entries == entries(1, 4, 1)


def test_snapshot_staging_is_lost_on_crash_and_gaps_are_refused() -> None:
    storage = SimStorage(RestoredState.bootstrap({"a"}))
    meta = SnapshotMeta(7, 2)
    storage.stage_chunk(meta, 0, b"abc")
    with pytest.raises(StorageContractError):
        storage.stage_chunk(meta, 9, b"def")
    storage.crash()
    with pytest.raises(StorageContractError):
        storage.install_staged(meta, keep_log=False)
    with pytest.raises(StorageContractError):
        storage.append(entries(5, 6, 1))


def test_machine_snapshot_round_trip_and_corruption() -> None:
    machine = HashChainMachine()
    for entry in entries(1, 20, 1):
        machine.apply(entry)
    restored = HashChainMachine.restore(machine.serialise())
    assert (restored.applied_index, restored.digest) == (20, machine.digest)
    with pytest.raises(SnapshotFormatError):
        HashChainMachine.restore(machine.serialise()[:-1])


def test_one_way_partition_blocks_one_direction_only() -> None:
    network = Network(random.Random(1), NetworkFaults(loss=0.0))
    cut = network.cut(split_links(["a"], ["b", "c"], both_ways=False))
    assert network.delays("a", "b") == ()
    assert len(network.delays("b", "a")) == 1
    network.restore(cut)
    assert len(network.delays("a", "b")) == 1


def test_demo_tells_the_story_and_succeeds() -> None:
    lines: list[str] = []
    assert run_demo(lines.append) == 0, "\n".join(lines)
    text = "\n".join(lines)
    assert text.startswith("SIMULATION")
    assert "partition healed" in text
    assert "no violation" in text


def test_pairwise_log_matching_check_fails_on_a_diverging_prefix() -> None:
    a = SimNode("a", RestoredState.bootstrap({"a", "b"}), RaftOptions())
    b = SimNode("b", RestoredState.bootstrap({"a", "b"}), RaftOptions())
    a.storage.append((Entry(1, 1), Entry(1, 2, payload=b"x"), Entry(2, 3)))
    b.storage.append((Entry(1, 1), Entry(1, 2, payload=b"y"), Entry(2, 3)))
    checker = SafetyChecker()
    with pytest.raises(SafetyViolation, match="Log Matching"):
        checker.check_logs_match([a, b])
    b.storage.append((Entry(1, 2, payload=b"x"), Entry(2, 3)))
    checker.check_logs_match([a, b])
