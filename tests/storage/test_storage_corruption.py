"""Damaged RocksDB files: every read is exact, or opening fails with ``CorruptStorageError``.

Seeded byte flips in every kind of file a store has: the write-ahead log (a store
killed before any flush, so the log holds everything), the SST files of the log,
state and snapshot column families (a store closed cleanly, so everything is in
SSTs), ``MANIFEST-*``, ``CURRENT`` and ``OPTIONS-*``. A damaged store must never open
with fewer entries, another term or vote, or other bytes than were written. A write-ahead
log cut short (what a power cut leaves) must still open, with a prefix of the batches.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from corruption_helpers import EXPECTED, Contents, fill, flip, open_and_read
from rocksdict import Options, Rdict

from replobj.errors import CorruptStorageError
from replobj.raft.types import HardState
from replobj_rocksdb import RocksDBStorage

CHILD = Path(__file__).with_name("storage_corruption_child.py")
SEEDS = range(12)


def build_killed(path: Path) -> None:
    """Fill a store in a child process and SIGKILL it: the contents are only in the WAL."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=CHILD.parent,
    )
    with child:
        assert child.stdout is not None
        line = child.stdout.readline()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert line == b"ready\n", f"the child failed before filling {path}"


def build_flushed(path: Path) -> dict[str, str]:
    """Fill a store and close it (everything goes to SSTs); map column family -> its SST."""
    with RocksDBStorage(path) as store:
        fill(store)
    families = {name: Options(raw_mode=True) for name in ("log", "state", "snapshot")}
    db = Rdict(str(path), Options(raw_mode=True), column_families=families)
    try:
        files = db.live_files()
    finally:
        db.close()
    by_key_length = {8: "log", 16: "snapshot"}
    return {
        by_key_length.get(len(f["start_key"]), "state"): str(f["name"]).lstrip("/") for f in files
    }


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The two filled stores every test copies: ``killed`` (WAL only), ``flushed`` (SSTs)."""
    base = tmp_path_factory.mktemp("templates")
    build_killed(base / "killed")
    sst = build_flushed(base / "flushed")
    assert set(sst) == {"log", "state", "snapshot"}, sst
    for family, name in sst.items():
        (base / f"sst-{family}").write_text(name)
    return {"killed": base / "killed", "flushed": base / "flushed", "sst": base}


def largest(path: Path, pattern: str) -> Path:
    return max(path.glob(pattern), key=lambda p: p.stat().st_size)


TARGETS: dict[str, tuple[str, Callable[[Path, Path], Path]]] = {
    "wal": ("killed", lambda store, _: largest(store, "*.log")),
    "sst-log": ("flushed", lambda store, base: store / (base / "sst-log").read_text()),
    "sst-state": ("flushed", lambda store, base: store / (base / "sst-state").read_text()),
    "sst-snapshot": ("flushed", lambda store, base: store / (base / "sst-snapshot").read_text()),
    "manifest": ("flushed", lambda store, _: largest(store, "MANIFEST-*")),
    "current": ("flushed", lambda store, _: store / "CURRENT"),
    "options": ("flushed", lambda store, _: largest(store, "OPTIONS-*")),
}


def check_refusal(error: CorruptStorageError, store: Path, damaged: Path) -> None:
    message = str(error)
    assert str(store) in message, message
    assert damaged.name in message or "could not tell which file" in message, message
    assert "join=True" in message, message


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", list(TARGETS))
def test_flipped_bytes_are_refused_or_harmless(
    templates: dict[str, Path], tmp_path: Path, kind: str, seed: int
) -> None:
    template, locate = TARGETS[kind]
    store = tmp_path / "store"
    shutil.copytree(templates[template], store)
    damaged = locate(store, templates["sst"])
    what = flip(damaged, random.Random(f"{kind}-{seed}"))
    print(f"kind={kind} seed={seed} flipped {what} in {store}")
    outcome = open_and_read(store)
    if isinstance(outcome, CorruptStorageError):
        check_refusal(outcome, store, damaged)
    else:
        assert outcome == EXPECTED, f"silently different contents after flipping {what}"


def prefix_of_expected(count: int) -> Contents:
    last = count == len(EXPECTED.entries)
    return Contents(
        EXPECTED.hard_state if last else HardState(1),
        EXPECTED.snapshot,
        EXPECTED.snapshot_bytes,
        EXPECTED.entries[:count],
        EXPECTED.identity,
    )


@pytest.mark.parametrize("seed", range(8))
def test_a_torn_log_tail_opens_with_a_prefix_of_the_batches(
    templates: dict[str, Path], tmp_path: Path, seed: int
) -> None:
    store = tmp_path / "store"
    shutil.copytree(templates["killed"], store)
    wal = largest(store, "*.log")
    data = wal.read_bytes()
    cut = random.Random(seed).randrange(len(data) - 4000, len(data))
    wal.write_bytes(data[:cut])
    print(f"seed={seed} cut {wal.name} at {cut} of {len(data)} in {store}")
    outcome = open_and_read(store)
    assert isinstance(outcome, Contents), outcome
    assert len(outcome.entries) < len(EXPECTED.entries)
    assert outcome == prefix_of_expected(len(outcome.entries))


def record_offsets(block: bytes) -> list[int]:
    """Offsets of the records of one write-ahead-log block (7-byte headers, RocksDB format)."""
    offsets, position = [], 0
    while position + 7 <= len(block):
        offsets.append(position)
        position += 7 + int.from_bytes(block[position + 4 : position + 6], "little")
    return offsets


@pytest.mark.parametrize("from_end", [1, 2, 5], ids=["last", "second-last", "fifth-last"])
def test_a_record_length_pointing_past_the_end_is_not_a_torn_tail(
    templates: dict[str, Path], tmp_path: Path, from_end: int
) -> None:
    """A damaged length field in the last block makes a record run past the end of the
    file, which RocksDB cannot tell from a torn tail: the store checks it itself."""
    store = tmp_path / "store"
    shutil.copytree(templates["killed"], store)
    wal = largest(store, "*.log")
    data = bytearray(wal.read_bytes())
    block_start = len(data) - len(data) % 32768
    record = block_start + record_offsets(bytes(data[block_start:]))[-from_end]
    data[record + 5] ^= 0x80
    wal.write_bytes(bytes(data))
    print(f"raised the length of the record at {record} of {wal.name} in {store}")
    outcome = open_and_read(store)
    assert isinstance(outcome, CorruptStorageError), "a damaged record was taken for a torn tail"
    check_refusal(outcome, store, wal)
