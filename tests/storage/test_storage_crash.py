"""Kill -9 a real process writing to a RocksDB store; every acknowledged write must survive.

The child (``storage_crash_child.py``) announces each write (``intent``) and each
durable acknowledgement (``ack``) on a pipe. After every SIGKILL the parent reopens
the store and requires it to equal exactly the acknowledged state, or that state
plus the one announced-but-unacknowledged write (which may or may not have reached
the disk). That proves: no acknowledged entry lost or damaged, the log contiguous,
the hard state never behind, snapshot install and compaction atomic.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from storage_helpers import crash_payload, crash_snapshot_bytes

from replobj_rocksdb import RocksDBStorage

CHILD = Path(__file__).with_name("storage_crash_child.py")


@dataclass(frozen=True)
class StoreImage:
    """What a store holds, reduced to what the child's writes determine."""

    hard_term: int = 0
    snapshot: tuple[int, int, int] = (0, 0, 0)
    """(last_index, last_term, size)"""
    log: dict[int, int] = field(default_factory=dict)
    """index -> term"""

    def after(self, intent: list[str]) -> StoreImage:
        """This image once the write announced by ``intent`` is applied."""
        kind, *numbers = intent
        if kind == "append":
            first, last, term = map(int, numbers)
            log = {i: t for i, t in self.log.items() if i < first}
            log.update(dict.fromkeys(range(first, last + 1), term))
            return replace(self, hard_term=max(self.hard_term, term), log=log)
        index, term, size, keep = map(int, numbers)
        log = {i: t for i, t in self.log.items() if keep and i > index}
        return replace(self, snapshot=(index, term, size), log=log)

    @classmethod
    def read(cls, path: Path) -> StoreImage:
        """Reopen the store at ``path`` and check every entry and snapshot byte is intact."""
        with RocksDBStorage(path) as store:
            restored = store.load()
            for entry in restored.entries:
                assert entry.payload == crash_payload(entry.index, entry.term), entry.index
            meta, size = restored.snapshot, store.snapshot_size()
            expected = crash_snapshot_bytes(meta.last_index, meta.last_term, size)
            assert store.read_snapshot_chunk(0, size + 1) == expected
            return cls(
                restored.hard_state.term,
                (meta.last_index, meta.last_term, size),
                {e.index: e.term for e in restored.entries},
            )


def run_child_until_killed(
    path: Path, seed: int, snapshot_share: float, delay: float
) -> list[list[str]]:
    """Start the child, SIGKILL it ``delay`` seconds after it is ready; return its lines."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), str(seed), str(snapshot_share)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=CHILD.parent,
    )
    assert child.stdout is not None
    assert child.stderr is not None
    fd = child.stdout.fileno()
    buffer = b""
    kill_at: float | None = None
    give_up = time.monotonic() + 30
    while True:
        now = time.monotonic()
        assert now < give_up, f"child never became ready; seed={seed} dir={path}"
        if kill_at is not None and now >= kill_at and child.returncode is None:
            child.send_signal(signal.SIGKILL)
            child.wait()
        timeout = 0.5 if kill_at is None or child.returncode is not None else kill_at - now
        readable, _, _ = select.select([fd], [], [], max(0.0, timeout))
        if not readable:
            continue
        data = os.read(fd, 65536)
        if not data:
            break
        buffer += data
        if kill_at is None and b"ready\n" in buffer:
            kill_at = time.monotonic() + delay
    child.wait()
    stderr = child.stderr.read().decode(errors="replace")
    child.stdout.close()
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL, f"child failed (seed={seed}):\n{stderr}"
    complete = buffer[: buffer.rfind(b"\n") + 1].decode().splitlines()
    return [line.split() for line in complete]


def crash_rounds(tmp_path: Path, kills: int, snapshot_share: float, max_delay: float) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    path = tmp_path / "store"
    print(f"seed={seed} dir={path}")
    acknowledged = StoreImage()
    acked_writes = 0
    killed_mid_write: Counter[str] = Counter()
    for round_number in range(kills):
        lines = run_child_until_killed(
            path, rng.randrange(1 << 32), snapshot_share, rng.uniform(0, max_delay)
        )
        assert lines[0] == ["ready"]
        pending: list[str] | None = None
        for line in lines[1:]:
            if line[0] == "intent":
                pending = line[1:]
            else:
                assert line == ["ack"]
                assert pending is not None
                acknowledged = acknowledged.after(pending)
                acked_writes += 1
                pending = None
        observed = StoreImage.read(path)
        context = f"seed={seed} round={round_number} dir={path} pending={pending}"
        assert observed.hard_term >= acknowledged.hard_term, context
        allowed = [acknowledged] if pending is None else [acknowledged, acknowledged.after(pending)]
        assert observed in allowed, context
        if pending is not None:
            outcome = "not on disk" if observed == acknowledged else "on disk"
            killed_mid_write[f"{pending[0]} {outcome}"] += 1
        acknowledged = observed
    last_index = max([acknowledged.snapshot[0], *acknowledged.log])
    print(
        f"kills={kills} acknowledged writes={acked_writes} lost acknowledged=0 "
        f"killed mid-write: {dict(killed_mid_write)} final last index={last_index}"
    )
    assert acked_writes > kills


@pytest.mark.timeout(60)
def test_kill_during_synced_appends_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    crash_rounds(tmp_path, kills=35, snapshot_share=0.03, max_delay=0.08)


@pytest.mark.timeout(60)
def test_kill_during_snapshot_install_and_compaction(tmp_path: Path) -> None:
    crash_rounds(tmp_path, kills=25, snapshot_share=0.5, max_delay=0.08)
