"""A flood of silent connections from one address cannot lock real peers out (issue 13)."""

from __future__ import annotations

import time

import anyio
import pytest
from transport_helpers import SECRET, resend_until_received, wait_until

from replobj.raft.messages import TimeoutNow
from replobj.transport.tcp import TcpTransport

pytestmark = pytest.mark.anyio


async def test_silent_connections_from_one_address_do_not_block_another(
    ports: list[int],
) -> None:
    """Before: 200 silent connections from one address took all 64 pending-handshake slots and
    a real peer's new link waited 18 s. Now one source holds at most 8 of them."""
    pa, pb, _ = ports
    async with (
        TcpTransport("a", ("127.0.0.1", pa), {}, secret=SECRET) as a,
        TcpTransport(
            "b", ("127.0.0.1", pb), {"a": ("127.0.0.1", pa)}, secret=SECRET, backoff=(0.01, 0.05)
        ) as b,
    ):
        silent: list[anyio.abc.SocketStream] = []
        try:
            for _ in range(200):
                silent.append(await anyio.connect_tcp("127.0.0.1", pa, local_host="127.0.0.2"))  # noqa: PERF401
            await wait_until(lambda: a.stats.rejected >= 150, "most silent connections refused")
            started = time.monotonic()
            got = await resend_until_received(b, "a", a, TimeoutNow(1, "b"), within=2.0)
            print(f"the real peer got through in {time.monotonic() - started:.3f} s")
            assert got == TimeoutNow(1, "b")
            assert a.stats.rejected >= 200 - 8
        finally:
            for stream in silent:
                await stream.aclose()
