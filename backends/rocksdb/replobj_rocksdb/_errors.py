"""Turning rocksdict's untyped exceptions into ``replobj.errors`` exceptions that name the path."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from replobj.errors import CorruptStorageError, ReplObjError, StorageError, UnusableDataDirError

RESTORE_FROM_PEERS = (
    "move the directory aside and restart this member on an empty data directory with "
    "join=True: the leader refills it from the other members (docs/operations.md, losing a "
    "member's data directory)"
)
"""What to do about a data directory that cannot be used."""

_STORE_FILE = re.compile(r"\b(\d{6,}\.(?:log|sst|blob)|MANIFEST-\d+|OPTIONS-\d+|CURRENT)\b")
_INFO_LOG_TAIL = 64 * 1024
_GUESS = "may be corrupted"
"""How RocksDB ends a report it attributes to the MANIFEST without knowing the damaged file."""


def corrupt(path: Path, what: str, cause: Exception) -> CorruptStorageError:
    """The error for a value of the store in ``path`` that failed our own checks."""
    why = f"{path}: {what} is corrupt ({cause}); the data cannot be trusted"
    return CorruptStorageError(f"{why}: {RESTORE_FROM_PEERS}")


def damaged_files(path: Path, message: str) -> list[str]:
    """The store files a RocksDB corruption report is about, as far as it can be known.

    Block checksum errors name their SST in ``message``; write-ahead-log replay errors
    do not, but RocksDB's info log (``LOG``) has the line ``.../000012.log: dropping N
    bytes; Corruption: ...``, so its last lines that mention corruption are searched too.
    """
    names = _STORE_FILE.findall(message)
    if not names:
        names = [
            name
            for line in _info_log_tail(path).splitlines()
            if "Corruption" in line
            for name in _STORE_FILE.findall(line.split("Corruption", 1)[0])
        ]
    return list(dict.fromkeys(names))


def _info_log_tail(path: Path) -> str:
    try:
        with open(path / "LOG", "rb") as info_log:
            info_log.seek(0, 2)
            info_log.seek(max(0, info_log.tell() - _INFO_LOG_TAIL))
            return info_log.read().decode(errors="replace")
    except OSError:
        return ""


def corruption_error(path: Path, action: str, message: str) -> CorruptStorageError:
    """The error for a RocksDB ``Corruption:`` report ``message`` about the store in ``path``."""
    files = damaged_files(path, message)
    if not files:
        where = " (RocksDB did not say in which file)"
    elif _GUESS in message:
        where = f", possibly in {', '.join(files)} (RocksDB could not tell which file for sure)"
    else:
        where = f" in {', '.join(files)}"
    return CorruptStorageError(
        f"{path}: RocksDB found damaged data{where} during {action} ({message}); the store "
        f"cannot be trusted: {RESTORE_FROM_PEERS}"
    )


def missing_file_error(path: Path, action: str, message: str) -> CorruptStorageError:
    """The error for a file of the store that RocksDB's metadata names but cannot find."""
    files = _STORE_FILE.findall(message)
    manifests = [name for name in files if name.startswith("MANIFEST-")]
    if manifests:
        what = f"CURRENT names {manifests[0]}, which does not exist: CURRENT is damaged"
    else:
        what = f"{', '.join(files) or 'a file'} listed in the MANIFEST is missing"
    return CorruptStorageError(
        f"{path}: {what} (RocksDB during {action}: {message}); the store cannot be trusted: "
        f"{RESTORE_FROM_PEERS}"
    )


_ADVICE = {
    errno.EROFS: "it is on a read-only file system: remount it read-write, or choose a "
    "directory on a writable file system",
    errno.EACCES: "permission denied: give the user this process runs as ({user}) read, write "
    "and search rights on it and its parents, or choose a directory it owns",
    errno.ENOTDIR: "a component of the path is a file, not a directory: choose a path whose "
    "parents are directories",
    errno.ENOSPC: "the file system is full: free space, or choose a directory on another one",
}
_ADVICE[errno.EPERM] = _ADVICE[errno.EACCES]
_RUST_ERRNO = re.compile(r"\(os error (\d+)\)")


def unusable_error(path: Path, doing: str, error: OSError | str) -> UnusableDataDirError:
    """The error for a data directory the OS will not let the store use (what and the fix)."""
    code = error.errno if isinstance(error, OSError) else None
    text = error if isinstance(error, str) else (error.strerror or str(error))
    if code is None and (found := _RUST_ERRNO.search(str(error))):
        code = int(found.group(1))
    advice = _ADVICE.get(code or 0, "fix the cause the OS gives, or choose another directory")
    user = os.geteuid() if hasattr(os, "geteuid") else "?"
    return UnusableDataDirError(
        f"{path}: the data directory {doing} ({text}); {advice.format(user=f'uid {user}')}"
    )


def _os_error_number(exc: Exception) -> int | None:
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    found = _RUST_ERRNO.search(str(exc))
    return int(found.group(1)) if found else None


@contextmanager
def rocksdb_errors(path: Path, action: str) -> Iterator[None]:
    """Re-raise any RocksDB failure inside the block as a :class:`StorageError` about ``path``.

    RocksDB reports damaged files with a message starting ``Corruption:``; those, and
    files of the store that its metadata names but that are missing, become
    :class:`CorruptStorageError`.
    """
    try:
        yield
    except ReplObjError:
        raise
    except Exception as exc:
        message = str(exc)
        if message.startswith("Corruption"):
            raise corruption_error(path, action, message) from exc
        if "No such file or directory" in message and str(path) in message:
            raise missing_file_error(path, action, message) from exc
        if _os_error_number(exc) in _ADVICE:
            raise unusable_error(path, f"cannot be used ({action})", message) from exc
        if "lock" in message.lower():
            raise StorageError(
                f"{path}: cannot {action}, the store is already open (by this or another "
                f"process): {message}"
            ) from exc
        raise StorageError(f"{path}: cannot {action}: {message}") from exc
