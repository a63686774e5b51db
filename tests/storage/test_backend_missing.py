"""The error for a missing storage backend says how to install it, from a checkout too."""

from __future__ import annotations

import importlib.metadata
import pathlib

import pytest

from replobj.storage import StorageBackendMissingError, load_backend, registry

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _no_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend no distribution registers a storage backend (as after `pip install replobj`)."""

    def none_installed(**_: object) -> importlib.metadata.EntryPoints:
        return importlib.metadata.EntryPoints(())

    monkeypatch.setattr(registry, "entry_points", none_installed)


def test_the_rocksdb_hint_works_from_a_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_backends(monkeypatch)
    with pytest.raises(StorageBackendMissingError) as raised:
        load_backend("rocksdb")
    message = str(raised.value)
    assert "no storage backend named 'rocksdb' is installed (installed: none)" in message
    assert "from the root of a replobj checkout run `pip install -e ./backends/rocksdb`" in message
    assert "pass a Storage object instead of a data directory" in message
    # The path it names is where the distribution is, relative to the repository root.
    project = (ROOT / "backends" / "rocksdb" / "pyproject.toml").read_text()
    assert 'name = "replobj-rocksdb"' in project


def test_another_backend_names_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_backends(monkeypatch)
    with pytest.raises(
        StorageBackendMissingError, match=r"registers 'lmdb' under 'replobj\.storage'"
    ):
        load_backend("lmdb")
