"""Fixtures for in-process cluster tests: both anyio backends and free loopback ports."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async integration test on asyncio and on trio."""
    return str(request.param)
