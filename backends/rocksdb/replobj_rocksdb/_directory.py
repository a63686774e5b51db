"""The format marker file that lets us refuse foreign directories before RocksDB touches them.

Opening a directory with RocksDB rewrites files in it even read-only, so the check
must not go through RocksDB: a small JSON file, ``REPLOBJ_STORE``, is written
(atomically, fsynced) before the database is created and checked on every open.
"""

from __future__ import annotations

import os
from pathlib import Path

from replobj.errors import IncompatibleStorageError, NotAStoreError

from ._codec import FORMAT_VERSION, STORE_NAME, format_marker, parse_format_marker
from ._errors import RESTORE_FROM_PEERS

MARKER_FILE = "REPLOBJ_STORE"
_MARKER_TEMP = MARKER_FILE + ".tmp"


def prepare_directory(path: Path) -> None:
    """Create a new store's marker in an empty or missing ``path``, or check an existing one.

    :raises ~replobj.errors.NotAStoreError: if ``path`` is a file, or a non-empty directory
        without a replobj-rocksdb marker.
    :raises ~replobj.errors.IncompatibleStorageError: if the marker names another format version.
    """
    if path.exists() and not path.is_dir():
        raise NotAStoreError(f"{path} is a file, not a replobj store directory; pick another path")
    if not path.exists() or {p.name for p in path.iterdir()} <= {_MARKER_TEMP}:
        path.mkdir(parents=True, exist_ok=True)
        _write_marker(path)
        return
    check_marker(
        path, (path / MARKER_FILE).read_bytes() if (path / MARKER_FILE).is_file() else None
    )


def check_marker(path: Path, marker: bytes | None) -> None:
    """Check a format marker read from ``path`` (file or state column family).

    :raises ~replobj.errors.NotAStoreError: if there is no marker or it names another store.
    :raises ~replobj.errors.IncompatibleStorageError: if it names another format version.
    """
    if marker is None:
        raise NotAStoreError(
            f"{path} is not empty and has no {MARKER_FILE} marker, so it is not a replobj store; "
            "nothing was changed: give the node an empty or new directory"
        )
    try:
        store, version = parse_format_marker(marker)
    except ValueError as exc:
        raise NotAStoreError(
            f"{path}: unreadable {MARKER_FILE} marker ({exc}); nothing was changed"
        ) from exc
    if store != STORE_NAME:
        raise NotAStoreError(
            f"{path} holds a {store!r} store, not {STORE_NAME!r}; nothing was changed"
        )
    if version != FORMAT_VERSION:
        raise IncompatibleStorageError(
            f"{path} was written in storage format version {version}, but this replobj-rocksdb "
            f"reads version {FORMAT_VERSION}; nothing was changed: install a matching "
            f"replobj-rocksdb, or {RESTORE_FROM_PEERS}"
        )


def _write_marker(path: Path) -> None:
    temp = path / _MARKER_TEMP
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, format_marker())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path / MARKER_FILE)
    _fsync_directory(path)
    _fsync_directory(path.resolve().parent)


def _fsync_directory(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
