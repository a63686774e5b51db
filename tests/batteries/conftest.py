"""Fixtures for the battery tests: both anyio backends."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async battery test on asyncio and on trio."""
    return str(request.param)
