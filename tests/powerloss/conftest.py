"""Fixtures for the power-loss filesystem tests: a live mount, always unmounted afterwards."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from replobj.testing.powerloss import PowerLossMount

STORAGE_TESTS = Path(__file__).parent.parent / "storage"
if str(STORAGE_TESTS) not in sys.path:
    sys.path.insert(0, str(STORAGE_TESTS))


@pytest.fixture
def powerloss(tmp_path: Path) -> Iterator[PowerLossMount]:
    """A started :class:`PowerLossMount` over ``tmp_path/backing`` on ``tmp_path/mnt``."""
    mount = PowerLossMount(tmp_path / "backing", tmp_path / "mnt")
    print(f"powerloss backing={mount.backing} mount={mount.mountpoint}")
    mount.start()
    try:
        yield mount
    finally:
        mount.close()
