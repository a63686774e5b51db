"""Data directories the store cannot use: ``UnusableDataDirError`` naming the path and the fix.

Tests run as root, where permission bits do not stop writes, so a read-only file
system is a real read-only tmpfs mount, and "permission denied" comes from a child
process that drops to the ``nobody`` user before opening the store.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_helpers import make_entries

from replobj.errors import UnusableDataDirError
from replobj.storage import WriteBatch
from replobj_rocksdb import RocksDBStorage

NOBODY = 65534


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs mounted on a temporary directory (remount it read-only in the test)."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


def remount_read_only(mountpoint: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mountpoint)], check=True)


def test_new_store_on_a_read_only_file_system(tmpfs: Path) -> None:
    (tmpfs / "node").mkdir()
    remount_read_only(tmpfs)
    with pytest.raises(UnusableDataDirError, match="read-only") as caught:
        RocksDBStorage(tmpfs / "node")
    assert str(tmpfs / "node") in str(caught.value)


def test_existing_store_on_a_read_only_file_system(tmpfs: Path) -> None:
    with RocksDBStorage(tmpfs / "node") as store:
        store.write(WriteBatch().append(make_entries(1, 3, term=1)))
        store.sync()
    remount_read_only(tmpfs)
    with pytest.raises(UnusableDataDirError, match="read-only") as caught:
        RocksDBStorage(tmpfs / "node")
    assert str(tmpfs / "node") in str(caught.value)


def test_a_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(UnusableDataDirError, match="is a file") as caught:
        RocksDBStorage(tmp_path / "file")
    assert str(tmp_path / "file") in str(caught.value)


def test_a_parent_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(UnusableDataDirError, match="cannot be created") as caught:
        RocksDBStorage(tmp_path / "file" / "node")
    assert str(tmp_path / "file" / "node") in str(caught.value)
    assert (tmp_path / "file").read_bytes() == b"x"


OPEN_AS_NOBODY = """
import os, sys
from replobj.errors import UnusableDataDirError
from replobj_rocksdb import RocksDBStorage
os.setgid({uid}); os.setuid({uid})
try:
    RocksDBStorage(sys.argv[1])
except UnusableDataDirError as exc:
    print("UnusableDataDirError:", exc)
"""


@pytest.fixture
def root_owned() -> Iterator[Path]:
    """A directory others may enter but not write (pytest's own tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="replobj-datadir-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_permission_denied(root_owned: Path, existing: bool) -> None:
    node = root_owned / "node"
    if existing:
        RocksDBStorage(node).close()
    else:
        node.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", OPEN_AS_NOBODY.format(uid=NOBODY), str(node)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    print(result.stdout, result.stderr)
    assert result.stdout.startswith("UnusableDataDirError:"), result.stderr
    assert str(node) in result.stdout
    assert "permission" in result.stdout.lower()
