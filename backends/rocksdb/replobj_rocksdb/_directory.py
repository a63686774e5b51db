"""The format marker file that lets us refuse foreign directories before RocksDB touches them.

Opening a directory with RocksDB rewrites files in it even read-only, so the check
must not go through RocksDB: a small JSON file, ``REPLOBJ_STORE``, is written
(atomically, fsynced) before the database is created and checked on every open.
"""

from __future__ import annotations

import os
from pathlib import Path

from replobj.errors import IncompatibleStorageError, NotAStoreError, UnusableDataDirError

from ._codec import FORMAT_VERSION, STORE_NAME, format_marker, parse_format_marker
from ._errors import RESTORE_FROM_PEERS, unusable_error

MARKER_FILE = "REPLOBJ_STORE"
_MARKER_TEMP = MARKER_FILE + ".tmp"


def prepare_directory(path: Path) -> None:
    """Create a new store's marker in an empty or missing ``path``, or check an existing one.

    :raises ~replobj.errors.UnusableDataDirError: if ``path`` is a file, or the OS refuses
        to create, read or write it (read-only file system, permissions, a parent that is a
        file); the message names the path and the fix.
    :raises ~replobj.errors.NotAStoreError: if ``path`` is a non-empty directory without a
        replobj-rocksdb marker.
    :raises ~replobj.errors.IncompatibleStorageError: if the marker names another format version.
    """
    try:
        if path.exists() and not path.is_dir():
            raise UnusableDataDirError(
                f"{path} is a file, not a directory; give the node a directory path "
                "(missing or empty for a new store)"
            )
        if not path.exists() or {p.name for p in path.iterdir()} <= {_MARKER_TEMP}:
            _create(path)
            return
        marker_file = path / MARKER_FILE
        marker = marker_file.read_bytes() if marker_file.is_file() else None
    except OSError as exc:
        if isinstance(exc, UnusableDataDirError | NotAStoreError | IncompatibleStorageError):
            raise
        raise unusable_error(path, "cannot be read", exc) from exc
    check_marker(path, marker)


def _create(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unusable_error(path, "cannot be created", exc) from exc
    try:
        _write_marker(path)
    except OSError as exc:
        raise unusable_error(path, "cannot be written", exc) from exc


def check_marker(path: Path, marker: bytes | None, *, where: str = f"{MARKER_FILE} marker") -> None:
    """Check a format marker read from ``path`` (file or state column family).

    A marker that is unreadable or names another store may be someone else's directory or
    a replobj store whose marker was damaged; the store cannot tell, so the message gives
    the way out of both.

    :param where: which marker was read, for the message.
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
            f"{path}: its {where} is unreadable ({exc}); nothing was changed: if this is a "
            f"replobj member's directory, the marker was damaged and the store cannot be "
            f"trusted: {RESTORE_FROM_PEERS}; otherwise give the node an empty or new directory"
        ) from exc
    if store != STORE_NAME:
        raise NotAStoreError(
            f"{path} holds a {store!r} store, not {STORE_NAME!r} (its {where} says so); nothing "
            "was changed: give the node an empty or new directory, or, if this is a replobj "
            f"member's directory whose marker was damaged, {RESTORE_FROM_PEERS}"
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
