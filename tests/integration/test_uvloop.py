"""uvloop (the ``replobj[fast]`` extra; the test extra installs it) where replobj owns the loop."""

from __future__ import annotations

import asyncio

import pytest
from cluster_helpers import Register, free_port

import replobj
from replobj.event_loop import UVLOOP_ENV, backend_options


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.parametrize(("setting", "expected"), [(None, "uvloop"), ("0", "asyncio")])
def test_blocking_node_runs_on_uvloop_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch, setting: str | None, expected: str
) -> None:
    if setting is None:
        monkeypatch.delenv(UVLOOP_ENV, raising=False)
    else:
        monkeypatch.setenv(UVLOOP_ENV, setting)
    address = f"127.0.0.1:{free_port()}"
    node = replobj.BlockingNode("u", listen=address, secret=replobj.new_secret())
    register = node.attach("reg", Register())
    with node:
        assert str(node.run(_loop_module)).split(".")[0] == expected
        assert register.add("x") == 1


def test_trio_ignores_uvloop() -> None:
    assert backend_options("trio") == {}
