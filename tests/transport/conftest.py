"""Shared fixtures: both anyio backends, free loopback ports and failure diagnostics."""

from __future__ import annotations

import pytest
from transport_helpers import free_port


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async transport test on asyncio and on trio."""
    return str(request.param)


@pytest.fixture
def ports() -> list[int]:
    """Three free TCP ports; printed so a failing run can be replayed."""
    chosen = [free_port() for _ in range(3)]
    print(f"loopback ports: {chosen}")
    return chosen
