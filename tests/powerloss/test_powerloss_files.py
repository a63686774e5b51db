"""Plain files on the power-loss filesystem: only what was fsynced survives a cut."""

from __future__ import annotations

import ctypes
import errno
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replobj.testing.powerloss import PowerLossMount, PowerLossMountError


def write_file(path: Path, data: bytes, *, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def append_file(path: Path, data: bytes, *, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, data)
        if sync:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def power_cycle(mount: PowerLossMount) -> int:
    """Cut the power and boot again; return the bytes the cut discarded."""
    discarded = mount.cut().dirty_bytes
    mount.start()
    return discarded


def test_unsynced_append_is_readable_then_lost_at_cut(powerloss: PowerLossMount) -> None:
    path = powerloss.mountpoint / "log"
    write_file(path, b"synced;", sync=True)
    append_file(path, b"unsynced", sync=False)
    assert path.read_bytes() == b"synced;unsynced"
    assert path.stat().st_size == 15
    assert (powerloss.backing / "log").read_bytes() == b"synced;"
    assert power_cycle(powerloss) > 0
    assert path.read_bytes() == b"synced;"
    assert path.stat().st_size == 7


def test_fsync_and_fdatasync_make_data_survive(powerloss: PowerLossMount) -> None:
    path = powerloss.mountpoint / "data"
    write_file(path, b"a" * 10_000, sync=True)
    append_file(path, b"b" * 5000, sync=True)
    fsyncs = powerloss.stats().fsyncs
    assert fsyncs >= 2
    assert power_cycle(powerloss) == 0
    assert path.read_bytes() == b"a" * 10_000 + b"b" * 5000


def test_new_file_never_synced_exists_empty_after_cut(powerloss: PowerLossMount) -> None:
    path = powerloss.mountpoint / "fresh"
    write_file(path, b"lost", sync=False)
    power_cycle(powerloss)
    assert path.exists()
    assert path.read_bytes() == b""


def test_truncate_is_buffered_until_fsync(powerloss: PowerLossMount) -> None:
    path = powerloss.mountpoint / "t"
    original = random.Random(7).randbytes(10_000)
    write_file(path, original, sync=True)
    os.truncate(path, 100)
    assert path.stat().st_size == 100
    with open(path, "r+b") as handle:
        handle.seek(5000)
        handle.write(b"end")
    assert path.read_bytes() == original[:100] + bytes(4900) + b"end"
    power_cycle(powerloss)
    assert path.read_bytes() == original
    with open(path, "r+b") as handle:
        handle.truncate(100)
        handle.seek(5000)
        handle.write(b"end")
        handle.flush()
        os.fsync(handle.fileno())
    power_cycle(powerloss)
    assert path.read_bytes() == original[:100] + bytes(4900) + b"end"


def test_rename_is_durable_at_once_and_carries_unsynced_data(powerloss: PowerLossMount) -> None:
    root = powerloss.mountpoint
    write_file(root / "a", b"old", sync=True)
    write_file(root / "b", b"replaced", sync=True)
    append_file(root / "a", b"+new", sync=False)
    os.rename(root / "a", root / "b")
    assert (root / "b").read_bytes() == b"old+new"
    power_cycle(powerloss)
    assert sorted(os.listdir(root)) == ["b"]
    assert (root / "b").read_bytes() == b"old"
    append_file(root / "b", b"+new", sync=False)
    (root / "sub").mkdir()
    os.rename(root / "b", root / "sub" / "c")
    append_file(root / "sub" / "c", b"!", sync=True)
    power_cycle(powerloss)
    assert (root / "sub" / "c").read_bytes() == b"old+new!"


def test_unlink_drops_unsynced_data_and_rmdir_works(powerloss: PowerLossMount) -> None:
    root = powerloss.mountpoint
    (root / "d").mkdir()
    write_file(root / "d" / "f", b"x" * 9000, sync=False)
    assert powerloss.stats().dirty_bytes >= 9000
    os.unlink(root / "d" / "f")
    assert powerloss.stats().dirty_bytes == 0
    os.rmdir(root / "d")
    power_cycle(powerloss)
    assert os.listdir(root) == []


def test_large_directory_lists_completely(powerloss: PowerLossMount) -> None:
    names = {f"entry-{index:04d}-{'x' * 40}" for index in range(250)}
    for name in names:
        (powerloss.mountpoint / name).touch()
    assert set(os.listdir(powerloss.mountpoint)) == names
    power_cycle(powerloss)
    assert set(os.listdir(powerloss.mountpoint)) == names


def test_rename_with_flags_is_refused_with_einval(powerloss: PowerLossMount) -> None:
    root = powerloss.mountpoint
    write_file(root / "a", b"1", sync=True)
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_noreplace = -100, 1
    result = libc.renameat2(
        at_fdcwd, bytes(root / "a"), at_fdcwd, bytes(root / "b"), rename_noreplace
    )
    assert result == -1
    assert ctypes.get_errno() == errno.EINVAL
    assert os.listdir(root) == ["a"]


def test_clean_stop_syncs_everything(powerloss: PowerLossMount) -> None:
    path = powerloss.mountpoint / "f"
    write_file(path, b"kept by a clean stop", sync=False)
    assert powerloss.stop().dirty_bytes > 0
    assert (powerloss.backing / "f").read_bytes() == b"kept by a clean stop"
    powerloss.start()
    assert path.read_bytes() == b"kept by a clean stop"


def test_mounting_twice_raises_an_actionable_error(
    powerloss: PowerLossMount, tmp_path: Path
) -> None:
    second = PowerLossMount(tmp_path / "other", powerloss.mountpoint)
    with pytest.raises(PowerLossMountError, match="already a mount point"):
        second.start()
    second.close()


def test_daemon_refusal_is_reported_with_its_reason(tmp_path: Path) -> None:
    mount = PowerLossMount(tmp_path / "mnt" / "inside", tmp_path / "mnt")
    try:
        with pytest.raises(PowerLossMountError, match="inside the mount point"):
            mount.start()
        assert not mount.running
        assert not os.path.ismount(tmp_path / "mnt")
    finally:
        mount.close()


def test_a_dead_mount_left_behind_is_detached_on_start(powerloss: PowerLossMount) -> None:
    write_file(powerloss.mountpoint / "f", b"synced", sync=True)
    daemon = powerloss._daemon
    assert daemon is not None
    daemon.kill()
    daemon.wait()
    assert daemon.stdout is not None
    daemon.stdout.close()
    with pytest.raises(OSError, match="not connected"):
        os.stat(powerloss.mountpoint)
    powerloss._daemon = None
    powerloss.start()
    assert (powerloss.mountpoint / "f").read_bytes() == b"synced"


ORPHAN_SCRIPT = """
import os, sys
from pathlib import Path
from replobj.testing.powerloss import PowerLossMount
mount = PowerLossMount(Path(sys.argv[1]), Path(sys.argv[2]))
mount.start()
print(mount._daemon.pid, mount._workdir, flush=True)
os._exit(0)
"""


def test_daemon_dies_and_unmounts_when_its_controller_dies(tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    controller = subprocess.run(
        [sys.executable, "-c", ORPHAN_SCRIPT, str(tmp_path / "backing"), str(mountpoint)],
        capture_output=True,
        check=True,
        timeout=30,
    )
    pid_text, workdir = controller.stdout.decode().split()
    daemon_pid = int(pid_text)
    print(f"daemon pid={daemon_pid} mount={mountpoint}")
    deadline = time.monotonic() + 10
    while os.path.ismount(mountpoint) or process_exists(daemon_pid):
        assert time.monotonic() < deadline, "orphaned daemon still serving"
        time.sleep(0.01)
    assert not os.path.ismount(mountpoint)
    shutil.rmtree(workdir)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
