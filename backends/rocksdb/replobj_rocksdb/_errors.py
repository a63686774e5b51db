"""Turning rocksdict's untyped exceptions into ``replobj.errors`` exceptions that name the path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from replobj.errors import CorruptStorageError, ReplObjError, StorageError

RESTORE_FROM_PEERS = (
    "move the directory aside and restart the node on an empty one with join=True: it gets "
    "everything from the other members (docs/operations.md, losing a member's data directory)"
)
"""What to do about a data directory that cannot be used."""


@contextmanager
def rocksdb_errors(path: Path, action: str) -> Iterator[None]:
    """Re-raise any RocksDB failure inside the block as a :class:`StorageError` about ``path``.

    RocksDB reports damaged files with a message starting ``Corruption:``; those
    become :class:`CorruptStorageError`.
    """
    try:
        yield
    except ReplObjError:
        raise
    except Exception as exc:
        message = str(exc)
        if message.startswith("Corruption"):
            raise CorruptStorageError(
                f"{path}: RocksDB reports corruption during {action}: {message}; "
                f"{RESTORE_FROM_PEERS}"
            ) from exc
        if "lock" in message.lower():
            raise StorageError(
                f"{path}: cannot {action}, the store is already open (by this or another "
                f"process): {message}"
            ) from exc
        raise StorageError(f"{path}: cannot {action}: {message}") from exc
