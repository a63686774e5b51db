"""Fixtures for the nemesis tests: the parent's anyio backend."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run async nemesis tests on asyncio and on trio."""
    return str(request.param)
