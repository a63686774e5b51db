"""Child process of the crash tests: writes synced batches forever, announcing each on stdout.

Usage: ``python storage_crash_child.py DATA_DIR SEED SNAPSHOT_SHARE``. Before each
write it prints ``intent ...``; after the write is durable it prints ``ack``. The
parent SIGKILLs it at a random moment and checks that the reopened store holds every
acknowledged write, plus at most the one announced but unacknowledged.
"""

from __future__ import annotations

import random
import sys

from storage_helpers import crash_payload, crash_snapshot_bytes

from replobj.raft.types import ClusterConfig, Entry, HardState, SnapshotMeta
from replobj.storage import WriteBatch
from replobj_rocksdb import RocksDBStorage

CONFIG = ClusterConfig(voters=frozenset({"a", "b", "c"}))
CHUNK = 64 * 1024


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def install_snapshot(store: RocksDBStorage, rng: random.Random) -> None:
    snapshot, last = store.snapshot_meta(), store.last_index()
    index = rng.randint(snapshot.last_index + 1, last)
    term = store.term_at(index)
    assert term is not None
    size = rng.choice([0, 1000, 100_000, 300_000])
    keep = rng.random() < 0.7
    say(f"intent snapshot {index} {term} {size} {int(keep)}")
    data = crash_snapshot_bytes(index, term, size)
    writer = store.begin_snapshot(SnapshotMeta(index, term, CONFIG))
    for offset in range(0, size, CHUNK):
        writer.write_chunk(offset, data[offset : offset + CHUNK])
    writer.commit(keep_log=keep)


def append(store: RocksDBStorage, rng: random.Random) -> None:
    snapshot, last, term = store.snapshot_meta(), store.last_index(), store.hard_state().term
    truncate = last > snapshot.last_index and rng.random() < 0.1
    first = rng.randint(snapshot.last_index + 1, last) if truncate else last + 1
    new_term = term + 1 if truncate or term == 0 or rng.random() < 0.02 else term
    count = rng.choice([1, 1, 1, 4, 16, 64])
    batch = WriteBatch().append(
        [
            Entry(new_term, i, payload=crash_payload(i, new_term))
            for i in range(first, first + count)
        ]
    )
    if new_term != term:
        batch.set_hard_state(HardState(new_term, "a"))
    if snapshot.last_index and rng.random() < 0.1:
        batch.compact(snapshot.last_index)
    say(f"intent append {first} {first + count - 1} {new_term}")
    store.write(batch)
    store.sync()


def main() -> None:
    data_dir, seed, snapshot_share = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    rng = random.Random(seed)
    store = RocksDBStorage(data_dir)
    say("ready")
    while True:
        if rng.random() < snapshot_share and store.last_index() > store.snapshot_meta().last_index:
            install_snapshot(store, rng)
        else:
            append(store, rng)
        say("ack")


if __name__ == "__main__":
    main()
