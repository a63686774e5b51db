"""The disk-error switch: fsyncs fail with EIO (and lose the dirty pages), writes with ENOSPC."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from replobj.testing.powerloss import DiskFaultStats, PowerLossMount


def _open_with(path: Path, data: bytes) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    return fd


def test_a_failed_fsync_loses_the_dirty_data_even_if_a_later_fsync_succeeds(
    powerloss: PowerLossMount,
) -> None:
    path = powerloss.mountpoint / "wal"
    fd = _open_with(path, b"durable;")
    try:
        os.fsync(fd)
        os.write(fd, b"written-then-fsync-failed")
        powerloss.fail_disk(fsync_errno=errno.EIO)
        with pytest.raises(OSError) as failed:
            os.fdatasync(fd)
        assert failed.value.errno == errno.EIO
        with pytest.raises(OSError):
            os.fsync(fd)
        powerloss.heal_disk()
        os.fsync(fd)  # "fsyncgate": the retry succeeds, the data is not on disk
    finally:
        os.close(fd)
    assert powerloss.disk_faults() == DiskFaultStats(0, 0, 2, 0)
    assert (powerloss.backing / "wal").read_bytes() == b"durable;"
    powerloss.cut()
    powerloss.start()
    assert path.read_bytes() == b"durable;"


def test_a_full_disk_refuses_writes_until_healed(powerloss: PowerLossMount) -> None:
    path = powerloss.mountpoint / "data"
    fd = _open_with(path, b"before;")
    try:
        powerloss.fail_disk(fsync_errno=0, write_errno=errno.ENOSPC)
        with pytest.raises(OSError) as refused:
            os.write(fd, b"refused")
        assert refused.value.errno == errno.ENOSPC
        os.fsync(fd)  # fsyncs still work: what was written before becomes durable
        powerloss.heal_disk()
        os.write(fd, b"after")
        os.fsync(fd)
    finally:
        os.close(fd)
    stats = powerloss.disk_faults()
    assert (stats.writes_failed, stats.fsyncs_failed) == (1, 0)
    assert stats.write_errno == 0
    powerloss.cut()
    powerloss.start()
    assert path.read_bytes() == b"before;after"


def test_the_switch_survives_a_power_cut_and_a_reboot(powerloss: PowerLossMount) -> None:
    powerloss.fail_disk(fsync_errno=errno.EIO)
    powerloss.cut()
    powerloss.start()
    fd = _open_with(powerloss.mountpoint / "f", b"x")
    try:
        with pytest.raises(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
    assert powerloss.disk_faults().fsync_errno == errno.EIO
