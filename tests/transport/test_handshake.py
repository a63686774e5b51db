"""The secret is required, and the handshake gives a stranger no offline oracle (issue 13)."""

from __future__ import annotations

import hashlib
import hmac
import os
import time

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from transport_helpers import KEY, SECRET, wait_until

from replobj import new_secret
from replobj.errors import AuthenticationError, ProtocolError, WeakSecretError
from replobj.secret import cluster_key
from replobj.transport import pake
from replobj.transport.auth import Hello, client_handshake
from replobj.transport.tcp import TcpTransport
from replobj.transport.udp import UdpTransport

LOOPBACK = ("127.0.0.1", 0)


@pytest.mark.parametrize("transport", [TcpTransport, UdpTransport])
@pytest.mark.parametrize("secret", [None, "", b"short", "15 bytes secret", 12345])
def test_a_missing_or_short_secret_is_refused(
    transport: type[TcpTransport | UdpTransport], secret: object
) -> None:
    """Loopback used to run without a secret: any local account could connect and run code."""
    with pytest.raises(WeakSecretError, match="secret"):
        transport("a", LOOPBACK, {}, secret=secret)  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", [TcpTransport, UdpTransport])
def test_a_sixteen_byte_secret_is_accepted_as_str_or_bytes(
    transport: type[TcpTransport | UdpTransport],
) -> None:
    transport("a", LOOPBACK, {}, secret="16 bytes secret!")
    transport("a", LOOPBACK, {}, secret=b"16 bytes secret!")


def test_pake_shares_agree_and_differ_under_another_key() -> None:
    sid = os.urandom(32)
    a, b = pake.Exchange(KEY, sid), pake.Exchange(KEY, sid)
    assert a.finish(b.share) == b.finish(a.share)
    stranger = pake.Exchange(cluster_key(new_secret().encode()), sid)
    c = pake.Exchange(KEY, sid)
    assert c.finish(stranger.share) != stranger.finish(c.share)


@pytest.mark.parametrize(
    "value", [0, 1, pake.GROUP_P - 1, pake.GROUP_P, pake.GROUP_P + 5, pake.GROUP_P - 2]
)
def test_pake_refuses_shares_outside_the_subgroup(value: int) -> None:
    share = value.to_bytes(pake.SHARE_BYTES, "big") if value < 1 << 2048 else b"\xff" * 256
    with pytest.raises(ProtocolError, match="share"):
        pake.Exchange(KEY, b"sid").finish(share)
    with pytest.raises(ProtocolError, match="share"):
        pake.Exchange(KEY, b"sid").finish(share[:-1])


def test_pake_cost_is_measured() -> None:
    """Print the per-side cost (recorded in docs/wire.md); both sides within 0.5 s."""
    started = time.perf_counter()
    rounds = 5
    for _ in range(rounds):
        a, b = pake.Exchange(KEY, b"sid"), pake.Exchange(KEY, b"sid")
        assert a.finish(b.share) == b.finish(a.share)
    per_handshake = (time.perf_counter() - started) / rounds
    print(f"PAKE, both sides: {per_handshake * 1e3:.1f} ms per handshake")
    assert per_handshake < 0.5


async def _stranger_reads_first_flight(port: int) -> tuple[bytes, bytes]:
    """Connect as a stranger, send a valid hello, return it and everything the server sends
    before the stranger has proved anything."""
    hello = Hello("x", "a", os.urandom(32)).encode()
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(hello)
        received = b""
        with anyio.move_on_after(1.0):
            while True:
                received += await stream.receive()
    return hello, received


@pytest.mark.anyio
async def test_the_server_gives_a_stranger_no_offline_oracle(ports: list[int]) -> None:
    """Before: the server answered a hello with HMAC(secret, transcript): a stranger could test
    guesses offline (the README's "s3cret" fell in 3 guesses). Now its first flight is its
    hello and a PAKE share, which no guess of the secret can be checked against."""
    async with TcpTransport("a", ("127.0.0.1", ports[0]), {}, secret=SECRET) as a:
        hello, flight = await _stranger_reads_first_flight(a.listen_address[1])
    assert flight, "the server said nothing"
    for key in (SECRET.encode(), KEY):
        for label in (b"replobj-server-proof", b"replobj-client-proof"):
            for cut in range(len(flight) - 31):
                guess = hmac.digest(key, label + hello + flight[:cut], hashlib.sha256)
                assert guess not in flight, f"the first flight carries a proof at {cut}"
    share = flight[-pake.SHARE_BYTES :]
    pake.check_share(int.from_bytes(share, "big"))


@pytest.mark.anyio
async def test_a_wrong_key_gets_one_refusal_byte_and_no_proof(ports: list[int]) -> None:
    async with TcpTransport("a", ("127.0.0.1", ports[0]), {}, secret=SECRET) as a:
        stream = await anyio.connect_tcp("127.0.0.1", a.listen_address[1])
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            with pytest.raises(AuthenticationError, match="refused our proof"):
                await client_handshake(
                    stream, reader, key=cluster_key(new_secret().encode()), node_id="x", peer_id="a"
                )
            with anyio.fail_after(5), pytest.raises(anyio.EndOfStream):
                await reader.receive()
        await wait_until(lambda: a.stats.rejected == 1, "the listener to count the refusal")


@pytest.mark.anyio
async def test_a_server_with_another_secret_is_refused_by_the_client(ports: list[int]) -> None:
    async with TcpTransport("a", ("127.0.0.1", ports[0]), {}, secret=new_secret()) as a:
        stream = await anyio.connect_tcp("127.0.0.1", a.listen_address[1])
        async with stream:
            with pytest.raises(AuthenticationError):
                await client_handshake(
                    stream, BufferedByteReceiveStream(stream), key=KEY, node_id="x", peer_id="a"
                )


@pytest.mark.anyio
async def test_handshake_time_is_measured(ports: list[int]) -> None:
    async with TcpTransport("a", ("127.0.0.1", ports[0]), {}, secret=SECRET) as a:
        rounds = 10
        started = time.perf_counter()
        for _ in range(rounds):
            async with await anyio.connect_tcp("127.0.0.1", a.listen_address[1]) as stream:
                reader = BufferedByteReceiveStream(stream)
                await client_handshake(stream, reader, key=KEY, node_id="x", peer_id="a")
        per = (time.perf_counter() - started) / rounds
        print(f"TCP connect + handshake over loopback: {per * 1e3:.1f} ms")
        assert per < 1.0
