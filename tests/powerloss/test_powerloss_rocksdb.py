"""RocksDB storage on the power-loss filesystem: a cut never loses an acknowledged write.

A child appends synced batches and announces each ``ack``; the parent cuts the power
(SIGKILL of the filesystem daemon, then of the child) at a random moment, boots the
filesystem again and requires the reopened store to equal the acknowledged state, or
that plus the one announced-but-unacknowledged write. The same child with syncing
disabled must lose acknowledged writes: proof the filesystem discards unsynced data.
"""

from __future__ import annotations

import os
import random
import select
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from test_storage_crash import StoreImage

from replobj.testing.powerloss import PowerLossMount, PowerLossStats

CHILD = Path(__file__).with_name("powerloss_rocksdb_child.py")


def run_child_until_cut(
    mount: PowerLossMount,
    store: Path,
    seed: int,
    *,
    sync: bool,
    cut_when: Callable[[float, int], bool],
) -> tuple[list[list[str]], PowerLossStats]:
    """Run the child on ``store`` until ``cut_when(seconds_since_ready, acks)``, then cut."""
    child = subprocess.Popen(
        [
            sys.executable,
            str(CHILD),
            str(store),
            str(seed),
            "0.03" if sync else "0",
            "sync" if sync else "nosync",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd="/",
    )
    assert child.stdout is not None
    assert child.stderr is not None
    fd = child.stdout.fileno()
    buffer = b""
    ready_at: float | None = None
    give_up = time.monotonic() + 30
    stats: PowerLossStats | None = None
    try:
        while stats is None:
            now = time.monotonic()
            assert now < give_up, f"child never reached the cut; seed={seed} dir={store}"
            if ready_at is not None and cut_when(now - ready_at, buffer.count(b"ack\n")):
                stats = mount.cut()
                break
            readable, _, _ = select.select([fd], [], [], 0.005 if ready_at else 0.5)
            if readable:
                data = os.read(fd, 65536)
                assert data, f"child exited early (seed={seed}): {child.stderr.read()!r}"
                buffer += data
                if ready_at is None and b"ready\n" in buffer:
                    ready_at = time.monotonic()
    finally:
        child.kill()
        child.wait()
    buffer += child.stdout.read()
    child.stdout.close()
    child.stderr.close()
    complete = buffer[: buffer.rfind(b"\n") + 1].decode().splitlines()
    return [line.split() for line in complete], stats


def acknowledged_after(
    start: StoreImage, lines: list[list[str]]
) -> tuple[StoreImage, list[str] | None, int]:
    """The state the child acknowledged, its pending intent, and how many acks it made."""
    assert lines[0] == ["ready"]
    acknowledged, pending, acks = start, None, 0
    for line in lines[1:]:
        if line[0] == "intent":
            pending = line[1:]
        else:
            assert line == ["ack"]
            assert pending is not None
            acknowledged = acknowledged.after(pending)
            acks += 1
            pending = None
    return acknowledged, pending, acks


def cut_after(delay: float) -> Callable[[float, int], bool]:
    """A cut condition: ``delay`` seconds after the child is ready."""
    return lambda elapsed, acks: elapsed >= delay


def last_index(image: StoreImage) -> int:
    return max([image.snapshot[0], *image.log])


@pytest.mark.timeout(60)
def test_power_cut_loses_no_acknowledged_rocksdb_write(powerloss: PowerLossMount) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    store = powerloss.mountpoint / "store"
    print(f"seed={seed} backing={powerloss.backing} store={store}")
    state, total_acks, discarded = StoreImage(), 0, 0
    cut_mid_write: Counter[str] = Counter()
    rounds = 8
    for round_number in range(rounds):
        delay = rng.uniform(0.05, 0.4)
        lines, stats = run_child_until_cut(
            powerloss,
            store,
            rng.randrange(1 << 32),
            sync=True,
            cut_when=cut_after(delay),
        )
        discarded += stats.dirty_bytes
        acknowledged, pending, acks = acknowledged_after(state, lines)
        total_acks += acks
        powerloss.start()
        observed = StoreImage.read(store)
        context = f"seed={seed} round={round_number} store={store} pending={pending}"
        assert observed.hard_term >= acknowledged.hard_term, context
        allowed = [acknowledged] if pending is None else [acknowledged, acknowledged.after(pending)]
        assert observed in allowed, context
        if pending is not None:
            outcome = "not on disk" if observed == acknowledged else "on disk"
            cut_mid_write[f"{pending[0]} {outcome}"] += 1
        state = observed
    print(
        f"rounds={rounds} acknowledged writes={total_acks} lost=0 cut mid-write: "
        f"{dict(cut_mid_write)} "
        f"unsynced bytes discarded by cuts={discarded} last index={last_index(state)}"
    )
    assert total_acks > rounds


@pytest.mark.timeout(60)
def test_power_cut_loses_acknowledged_writes_when_rocksdb_never_syncs(
    powerloss: PowerLossMount,
) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    store = powerloss.mountpoint / "store"
    print(f"seed={seed} backing={powerloss.backing} store={store}")
    state = StoreImage()
    for round_number in range(2):
        lines, stats = run_child_until_cut(
            powerloss,
            store,
            rng.randrange(1 << 32),
            sync=False,
            cut_when=lambda elapsed, acks: acks >= 30,
        )
        acknowledged, _, acks = acknowledged_after(state, lines)
        powerloss.start()
        observed = StoreImage.read(store)
        context = f"seed={seed} round={round_number} store={store} discarded={stats.dirty_bytes}"
        print(
            f"round {round_number}: acks={acks} acknowledged last index="
            f"{last_index(acknowledged)} survived last index={last_index(observed)}"
        )
        assert acks >= 30, context
        assert stats.dirty_bytes > 0, context
        assert last_index(observed) < last_index(acknowledged), context
        state = observed
