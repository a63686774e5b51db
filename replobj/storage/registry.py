"""Finding storage backends shipped by other distributions (entry-point group `replobj.storage`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import cast

from ..errors import StorageError
from .protocol import Storage

__all__ = ["ENTRY_POINT_GROUP", "StorageBackendMissingError", "load_backend", "open_storage"]

ENTRY_POINT_GROUP = "replobj.storage"
"""The entry-point group a storage distribution registers its store class under."""

StorageFactory = Callable[[str], Storage]


class StorageBackendMissingError(StorageError):
    """No installed distribution provides the requested storage backend; install it."""


def load_backend(name: str = "rocksdb") -> StorageFactory:
    """The store class registered as ``name`` in the ``replobj.storage`` entry-point group.

    :param name: the backend's entry-point name (``"rocksdb"`` for ``replobj-rocksdb``).
    :raises StorageBackendMissingError: if no installed distribution registers ``name``.
    """
    found = entry_points(group=ENTRY_POINT_GROUP, name=name)
    for entry_point in found:
        return cast(StorageFactory, entry_point.load())
    installed = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    raise StorageBackendMissingError(
        f"no storage backend named {name!r} is installed (installed: {installed or 'none'}); "
        f"{_install_hint(name)}, or pass a Storage object instead of a data directory"
    )


def _install_hint(name: str) -> str:
    """How to install the backend ``name``: the RocksDB one ships in this repository."""
    if name != "rocksdb":
        return f"install the distribution that registers {name!r} under {ENTRY_POINT_GROUP!r}"
    return (
        "install the RocksDB backend: from the root of a replobj checkout run "
        "`pip install -e ./backends/rocksdb` (it is the distribution replobj-rocksdb, in "
        "backends/rocksdb/; `pip install replobj-rocksdb` works only where your package "
        "index has it)"
    )


def open_storage(data_dir: str | os.PathLike[str], backend: str = "rocksdb") -> Storage:
    """Open (or create) the durable store in ``data_dir`` with the named backend.

    :param data_dir: the node's data directory; created if missing.
    :param backend: the entry-point name of the backend.
    :raises StorageBackendMissingError: if the backend is not installed.
    :raises ~replobj.errors.NotAStoreError: if ``data_dir`` holds something else.
    :raises ~replobj.errors.IncompatibleStorageError: if it was written by another format version.
    """
    return load_backend(backend)(os.fspath(data_dir))
