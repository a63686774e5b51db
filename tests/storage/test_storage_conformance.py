"""The contract of :class:`replobj.storage.Storage`, run against every implementation.

A new backend passes this file by adding itself to the ``harness`` fixture.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

import pytest
from storage_helpers import StoreHarness, make_entries

from replobj.errors import StorageError
from replobj.raft.options import RestoredState
from replobj.raft.types import ClusterConfig, Entry, EntryKind, HardState, SnapshotMeta
from replobj.storage import Storage, WriteBatch

CONFIG = ClusterConfig(voters=frozenset({"a", "b", "c"}))


def append(store: Storage, entries: list[Entry], *, sync: bool = True) -> None:
    store.write(WriteBatch().append(entries))
    if sync:
        store.sync()


def install(store: Storage, meta: SnapshotMeta, data: bytes, *, keep_log: bool = True) -> None:
    writer = store.begin_snapshot(meta)
    writer.write_chunk(0, data)
    writer.commit(keep_log=keep_log)


def test_fresh_store_is_empty(harness: StoreHarness) -> None:
    store = harness.store
    assert isinstance(store, Storage)
    assert store.load() == RestoredState()
    assert (store.first_index(), store.last_index()) == (1, 0)
    assert store.term_at(0) == 0
    assert store.term_at(1) is None
    assert store.snapshot_meta() == SnapshotMeta()
    assert store.snapshot_size() == 0
    assert store.read_snapshot_chunk(0, 100) == b""
    assert store.entries(1, 1) == []
    assert not WriteBatch()
    store.write(WriteBatch())
    store.sync()
    assert harness.restart().load() == RestoredState()


def test_appended_entries_read_back_exactly(harness: StoreHarness) -> None:
    store = harness.store
    entries = [
        Entry(1, 1, EntryKind.NOOP),
        Entry(1, 2, EntryKind.CONFIG, CONFIG.encode()),
        Entry(2, 3, EntryKind.COMMAND, bytes(range(256)) * 40),
        Entry(2, 4, EntryKind.COMMAND, b""),
    ]
    append(store, entries)
    assert store.entries(1, 5) == entries
    assert store.entries(2, 4) == entries[1:3]
    assert [store.term_at(i) for i in range(6)] == [0, 1, 1, 2, 2, None]
    assert store.last_index() == 4
    assert harness.restart().load().entries == tuple(entries)


def test_append_deletes_the_conflicting_suffix(harness: StoreHarness) -> None:
    store = harness.store
    append(store, make_entries(1, 10, term=1))
    append(store, make_entries(6, 2, term=2))
    assert store.last_index() == 7
    assert store.entries(1, 8) == make_entries(1, 5, term=1) + make_entries(6, 2, term=2)
    assert store.term_at(8) is None
    expected = store.entries(1, 8)
    assert harness.restart().entries(1, 8) == expected


def test_operations_of_one_batch_apply_in_order(harness: StoreHarness) -> None:
    store = harness.store
    batch = WriteBatch().append(make_entries(1, 5, term=1)).append(make_entries(3, 1, term=2))
    batch.append(make_entries(4, 2, term=3)).set_hard_state(HardState(3, "b"))
    store.write(batch)
    store.sync()
    expected = make_entries(1, 2, term=1) + make_entries(3, 1, term=2) + make_entries(4, 2, term=3)
    restored = harness.restart().load()
    assert restored.entries == tuple(expected)
    assert restored.hard_state == HardState(3, "b")


def test_hard_state_last_write_wins_and_survives_restart(harness: StoreHarness) -> None:
    store = harness.store
    store.write(WriteBatch().set_hard_state(HardState(1, None)))
    store.write(WriteBatch().set_hard_state(HardState(2, "a", catch_up_to=7)))
    assert store.hard_state() == HardState(2, "a", catch_up_to=7)
    store.sync()
    assert harness.restart().hard_state() == HardState(2, "a", catch_up_to=7)


@pytest.mark.parametrize(
    ("first", "reason"), [(7, "gap"), (3, "compacted")], ids=["gap", "compacted"]
)
def test_bad_append_changes_nothing(harness: StoreHarness, first: int, reason: str) -> None:
    store = harness.store
    append(store, make_entries(1, 5, term=1))
    install(store, SnapshotMeta(3, 1, CONFIG), b"snap")
    before = store.load()
    bad = WriteBatch().set_hard_state(HardState(9, "z")).append(make_entries(4, 1, term=2))
    bad.append(make_entries(first, 1, term=2))
    with pytest.raises(ValueError, match=reason):
        store.write(bad)
    assert store.load() == before


def test_compaction_beyond_the_snapshot_is_refused(harness: StoreHarness) -> None:
    store = harness.store
    append(store, make_entries(1, 5, term=1))
    with pytest.raises(ValueError, match="snapshot only covers"):
        store.write(WriteBatch().compact(2))
    install(store, SnapshotMeta(2, 1, CONFIG), b"s")
    store.write(WriteBatch().compact(2))
    assert store.load().entries == tuple(make_entries(3, 3, term=1))


def test_entries_outside_the_log_are_refused(harness: StoreHarness) -> None:
    store = harness.store
    append(store, make_entries(1, 5, term=1))
    install(store, SnapshotMeta(2, 1, CONFIG), b"s")
    for lo, hi in [(2, 4), (3, 7), (5, 4)]:
        with pytest.raises(ValueError, match="outside the stored log"):
            store.entries(lo, hi)


def test_snapshot_commit_compacts_and_keeps_the_tail(harness: StoreHarness) -> None:
    store = harness.store
    append(store, make_entries(1, 10, term=1))
    store.write(WriteBatch().set_hard_state(HardState(1, "a")))
    data = random.Random(1).randbytes(3000)
    writer = store.begin_snapshot(SnapshotMeta(6, 1, CONFIG))
    for offset in range(0, len(data), 700):
        writer.write_chunk(offset, data[offset : offset + 700])
    writer.commit(keep_log=True)
    for restart in (False, True):
        current = harness.restart() if restart else store
        assert current.snapshot_meta() == SnapshotMeta(6, 1, CONFIG)
        assert current.snapshot_size() == len(data)
        assert (current.first_index(), current.last_index()) == (7, 10)
        assert current.term_at(6) == 1
        assert current.term_at(5) is None
        assert current.load() == RestoredState(
            HardState(1, "a"), SnapshotMeta(6, 1, CONFIG), tuple(make_entries(7, 4, term=1))
        )
        assert current.read_snapshot_chunk(0, 10_000) == data
        assert current.read_snapshot_chunk(650, 100) == data[650:750]
        assert current.read_snapshot_chunk(2990, 100) == data[2990:]
        assert current.read_snapshot_chunk(3000, 100) == b""


def test_snapshot_without_keep_log_drops_the_whole_log(harness: StoreHarness) -> None:
    store = harness.store
    append(store, make_entries(1, 10, term=1))
    install(store, SnapshotMeta(4, 1, CONFIG), b"old")
    install(store, SnapshotMeta(20, 3, CONFIG), b"new", keep_log=False)
    assert store.load() == RestoredState(HardState(), SnapshotMeta(20, 3, CONFIG), ())
    assert store.term_at(20) == 3
    append(store, make_entries(21, 2, term=3))
    restored = harness.restart()
    assert restored.load().entries == tuple(make_entries(21, 2, term=3))
    assert restored.read_snapshot_chunk(0, 100) == b"new"


def test_snapshot_past_the_log_end_with_keep_log(harness: StoreHarness) -> None:
    store = harness.store
    append(store, make_entries(1, 3, term=1))
    install(store, SnapshotMeta(9, 2, CONFIG), b"x", keep_log=True)
    assert (store.first_index(), store.last_index()) == (10, 9)
    assert store.load().entries == ()


def test_bootstrap_configuration_as_an_empty_snapshot(harness: StoreHarness) -> None:
    install(harness.store, SnapshotMeta(0, 0, CONFIG), b"")
    assert harness.restart().load() == RestoredState.bootstrap({"a", "b", "c"})


def test_chunk_offsets_restart_or_continue(harness: StoreHarness) -> None:
    store = harness.store
    writer = store.begin_snapshot(SnapshotMeta(0, 0, CONFIG))
    writer.write_chunk(0, b"abandoned")
    writer.write_chunk(0, b"hello ")
    with pytest.raises(ValueError, match="offset 3"):
        writer.write_chunk(3, b"x")
    writer.write_chunk(6, b"world")
    writer.commit()
    assert store.read_snapshot_chunk(0, 100) == b"hello world"


def test_uncommitted_snapshot_changes_nothing(harness: StoreHarness) -> None:
    store = harness.store
    append(store, make_entries(1, 4, term=1))
    install(store, SnapshotMeta(2, 1, CONFIG), b"first")
    aborted = store.begin_snapshot(SnapshotMeta(3, 1, CONFIG))
    aborted.write_chunk(0, b"aborted")
    aborted.abort()
    superseded = store.begin_snapshot(SnapshotMeta(3, 1, CONFIG))
    superseded.write_chunk(0, b"superseded")
    staged = store.begin_snapshot(SnapshotMeta(4, 1, CONFIG))
    staged.write_chunk(0, b"staged")
    with pytest.raises(StorageError, match="finished"):
        superseded.commit()
    store.sync()
    restored = harness.restart()
    assert restored.snapshot_meta() == SnapshotMeta(2, 1, CONFIG)
    assert restored.read_snapshot_chunk(0, 100) == b"first"
    assert restored.load().entries == tuple(make_entries(3, 2, term=1))


def test_older_snapshot_is_refused(harness: StoreHarness) -> None:
    install(harness.store, SnapshotMeta(5, 1, CONFIG), b"s")
    with pytest.raises(ValueError, match="older"):
        harness.store.begin_snapshot(SnapshotMeta(4, 1, CONFIG))


def test_snapshot_larger_than_one_stored_value(harness: StoreHarness) -> None:
    store = harness.store
    data = random.Random(2).randbytes(2_600_000)
    writer = store.begin_snapshot(SnapshotMeta(0, 0, CONFIG))
    for offset in range(0, len(data), 900_000):
        writer.write_chunk(offset, data[offset : offset + 900_000])
    writer.commit()
    restored = harness.restart()
    assert restored.snapshot_size() == len(data)
    assert restored.read_snapshot_chunk(1_048_000, 1000) == data[1_048_000:1_049_000]
    assert (
        b"".join(
            restored.read_snapshot_chunk(offset, 1 << 20) for offset in range(0, len(data), 1 << 20)
        )
        == data
    )


def test_sync_in_a_worker_thread_while_writing(harness: StoreHarness) -> None:
    store = harness.store
    failures: list[BaseException] = []
    done = threading.Event()

    def syncer() -> None:
        try:
            while not done.is_set():
                store.sync()
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    worker = threading.Thread(target=syncer)
    worker.start()
    try:
        for index in range(1, 301):
            append(store, make_entries(index, 1, term=1), sync=False)
    finally:
        done.set()
        worker.join(timeout=30)
    assert not failures
    store.sync()
    assert harness.restart().last_index() == 300


@dataclass
class _Model:
    """What a store must hold after the random operations so far."""

    log: dict[int, Entry] = field(default_factory=dict)
    snapshot: SnapshotMeta = field(default_factory=SnapshotMeta)
    data: bytes = b""
    hard_state: HardState = field(default_factory=HardState)

    @property
    def last_index(self) -> int:
        return max([self.snapshot.last_index, *self.log])

    def restored(self) -> RestoredState:
        return RestoredState(
            self.hard_state, self.snapshot, tuple(self.log[i] for i in sorted(self.log))
        )


def test_random_operations_match_a_model(harness: StoreHarness) -> None:
    seed = random.randrange(1 << 32)
    print(f"seed={seed}")
    rng = random.Random(seed)
    store = harness.store
    model = _Model()
    term = 1
    for step in range(150):
        choice = rng.random()
        if choice < 0.6:
            first = rng.randint(model.snapshot.last_index + 1, model.last_index + 1)
            term += rng.random() < 0.3
            new = make_entries(first, rng.randint(1, 8), term, tag=b"s%d:" % step)
            batch = WriteBatch().append(new)
            if rng.random() < 0.3:
                model.hard_state = HardState(term, rng.choice(["a", "b", None]))
                batch.set_hard_state(model.hard_state)
            store.write(batch)
            model.log = {i: e for i, e in model.log.items() if i < first}
            model.log.update((e.index, e) for e in new)
        elif choice < 0.75 and model.last_index > model.snapshot.last_index:
            index = rng.randint(model.snapshot.last_index, model.last_index)
            keep = rng.random() < 0.7
            entry = model.log.get(index)
            meta = SnapshotMeta(index, model.snapshot.last_term if entry is None else entry.term)
            model.data = rng.randbytes(rng.randint(0, 5000))
            install(store, meta, model.data, keep_log=keep)
            model.snapshot = meta
            model.log = {i: e for i, e in model.log.items() if keep and i > index}
        elif choice < 0.85:
            store.sync()
            store = harness.restart()
        else:
            store.sync()
        assert store.load() == model.restored(), f"seed={seed} step={step}"
        assert store.read_snapshot_chunk(0, 1 << 20) == model.data, f"seed={seed} step={step}"
