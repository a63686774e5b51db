"""Shared fixtures: both anyio backends, free loopback ports and failure diagnostics."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async transport test on asyncio and on trio."""
    return str(request.param)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that was free on 127.0.0.1 a moment ago (bind port 0, read it back)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def ports() -> list[int]:
    """Three free TCP ports; printed so a failing run can be replayed."""
    chosen = [free_port() for _ in range(3)]
    print(f"loopback ports: {chosen}")
    return chosen
