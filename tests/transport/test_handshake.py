"""The secret is required, and the handshake gives a stranger no offline oracle (issue 13)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from transport_helpers import KEY, SECRET, wait_until

from replobj import new_secret
from replobj.errors import AuthenticationError, ProtocolError, WeakSecretError
from replobj.raft.messages import TimeoutNow
from replobj.secret import check_secret, cluster_key
from replobj.transport import pake
from replobj.transport.auth import MAC_BYTES, Hello, _read_hello, client_handshake
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


WIRE_DOC = Path(__file__).parents[2] / "docs" / "wire.md"
DOCUMENTED_STRETCH = (
    'hashlib.scrypt(secret, salt=b"replobj-cluster-key-v1", n=2**14, r=8, p=1, dklen=32)'
)
"""How docs/wire.md says the cluster key is made from the secret (its UTF-8 bytes)."""


def documented_key(secret: bytes) -> bytes:
    """The key by the formula in docs/wire.md, computed here, not by replobj."""
    return hashlib.scrypt(secret, salt=b"replobj-cluster-key-v1", n=2**14, r=8, p=1, dklen=32)


@pytest.mark.parametrize(
    "secret",
    [new_secret(), "ünïcödé secret, sixteen bytes+", os.urandom(32)],
    ids=["new-secret", "unicode", "random-bytes"],  # stable ids: parallel workers agree
)
def test_the_cluster_key_is_the_documented_scrypt_stretch_not_a_plain_hash(
    secret: str | bytes,
) -> None:
    """A weak secret must cost an attacker one scrypt per guess, as docs/wire.md says."""
    assert DOCUMENTED_STRETCH in WIRE_DOC.read_text(), f"docs/wire.md lacks {DOCUMENTED_STRETCH}"
    raw = secret.encode() if isinstance(secret, str) else secret
    key = cluster_key(check_secret(secret))
    assert key == documented_key(raw)
    plain = [
        hashlib.sha256(raw).digest(),
        hashlib.sha256(b"replobj-cluster-key-v1" + raw).digest(),
        hmac.digest(b"replobj-cluster-key-v1", raw, hashlib.sha256),
        hmac.digest(raw, b"replobj-cluster-key-v1", hashlib.sha256),
        hashlib.sha3_256(raw).digest(),
        hashlib.blake2s(raw).digest(),
        raw[:32],
    ]
    assert key not in plain


@pytest.mark.anyio
async def test_a_transport_proves_the_documented_key_of_its_secret(ports: list[int]) -> None:
    """A client holding only the documented stretch of the secret completes a handshake with
    a transport given the secret itself: the transports use that key, nothing weaker."""
    secret = "ünïcödé secret, sixteen bytes+"
    key = documented_key(secret.encode())
    async with TcpTransport("a", ("127.0.0.1", ports[0]), {}, secret=secret) as a:
        stream = await anyio.connect_tcp("127.0.0.1", a.listen_address[1])
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            await client_handshake(stream, reader, key=key, node_id="x", peer_id="a")


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


def assert_no_proof_of(keys: tuple[bytes, ...], transcript: bytes, sent: bytes) -> None:
    """No HMAC under any of ``keys`` over any prefix of ``transcript`` (with or without the
    old proof labels or the confirmation labels in front) appears in ``sent``: a party
    holding ``sent`` could test guesses of the secret offline against such a value."""
    labels = (b"", b"client", b"server", b"replobj-server-proof", b"replobj-client-proof")
    for key in keys:
        for label in labels:
            for cut in range(len(transcript) + 1):
                guess = hmac.digest(key, label + transcript[:cut], hashlib.sha256)
                assert guess not in sent, f"a proof under a known key at prefix {cut} ({label!r})"


def random_share() -> bytes:
    """A random element of the PAKE's subgroup: a valid share under every key and none."""
    value = pow(secrets.randbelow(pake.GROUP_P - 3) + 2, 2, pake.GROUP_P)
    return pake.check_share(value).to_bytes(pake.SHARE_BYTES, "big")


@dataclass
class StrangerServer:
    """A plain TCP listener playing a replobj member without knowing the secret: it answers
    the first connection's hello with its own hello and a random valid share, reads the
    client's answer (share and confirmation), pretends to accept with a made-up proof, and
    records everything the client sends until the client closes the connection."""

    sent_by_client: bytearray = field(default_factory=bytearray)
    transcript: bytearray = field(default_factory=bytearray)
    after_fake_proof: bytearray = field(default_factory=bytearray)
    done: anyio.Event = field(default_factory=anyio.Event)
    """Set once the recorded connection is over."""

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        if self.transcript:  # the client's later retries are not recorded
            await stream.aclose()
            return
        reader = BufferedByteReceiveStream(stream)
        async with stream:
            theirs, hello = await _read_hello(reader)
            self.sent_by_client += hello
            ours = Hello("a", theirs.node_id, os.urandom(32)).encode() + random_share()
            self.transcript += hello + ours
            await stream.send(ours)
            answer = pake.SHARE_BYTES + MAC_BYTES  # what a client sends next: share, confirmation
            ended = await self._record(reader, self.sent_by_client, until=len(hello) + answer)
            self.transcript += self.sent_by_client[len(hello) :]
            if not ended:
                await stream.send(b"\x01" + os.urandom(MAC_BYTES))  # "accepted", a made-up proof
                await self._record(reader, self.after_fake_proof)
        self.done.set()

    @staticmethod
    async def _record(
        reader: BufferedByteReceiveStream, into: bytearray, until: int | None = None
    ) -> bool:
        """Append what arrives to ``into`` until it holds ``until`` bytes (False) or the
        client closes (True): the end marker is the client's, never a time window."""
        try:
            while until is None or len(into) < until:
                into += await reader.receive(until - len(into) if until is not None else 65536)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
            return True
        return False


@pytest.mark.parametrize("client", ["transport", "client_handshake"])
@pytest.mark.anyio
async def test_a_client_gives_a_stranger_server_no_offline_oracle_and_refuses_it(
    client: str,
) -> None:
    """Before: the client sent its proof to whoever answered its hello. Now a stranger
    playing the server gets the client's hello, a PAKE share and a confirmation bound to a
    shared value it cannot compute: nothing to test a guess of the secret against. Answered
    with a random valid share and a made-up proof, the client refuses and hangs up without
    sending a record (the queued message stays unsent)."""
    stranger = StrangerServer()
    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as listener,
        anyio.create_task_group() as tasks,
    ):
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        print(f"stranger listening on 127.0.0.1:{port}, client={client}")
        tasks.start_soon(listener.serve, stranger.handle)
        with anyio.fail_after(10):
            if client == "transport":
                peers = {"a": ("127.0.0.1", port)}
                async with TcpTransport("b", ("127.0.0.1", 0), peers, secret=SECRET) as b:
                    b.send("a", TimeoutNow(1, "b"))  # makes it dial "a": the stranger
                    await stranger.done.wait()
                    await wait_until(lambda: b.stats.last_error is not None, "the refusal")
                    refusal = b.stats.last_error or ""
                    assert b.stats.sent == 0, b.stats
            else:
                stream = await anyio.connect_tcp("127.0.0.1", port)
                async with stream:
                    with pytest.raises(AuthenticationError) as raised:
                        await client_handshake(
                            stream,
                            BufferedByteReceiveStream(stream),
                            key=KEY,
                            node_id="b",
                            peer_id="a",
                        )
                    refusal = str(raised.value)
                await stranger.done.wait()
        tasks.cancel_scope.cancel()
    print(f"client refused: {refusal}")
    assert "could not prove the cluster secret" in refusal, refusal
    assert stranger.after_fake_proof == b"", "the client went on after a made-up proof"
    sent = bytes(stranger.sent_by_client)
    assert_no_proof_of((SECRET.encode(), KEY), bytes(stranger.transcript), sent)
    pake.check_share(int.from_bytes(sent[-MAC_BYTES - pake.SHARE_BYTES : -MAC_BYTES], "big"))


def test_the_proof_check_finds_a_planted_proof() -> None:
    """The check above can fail: an HMAC of the key over a prefix of the transcript is found."""
    transcript = os.urandom(300)
    planted = os.urandom(40) + hmac.digest(KEY, b"client" + transcript[:123], hashlib.sha256)
    with pytest.raises(AssertionError, match="prefix 123"):
        assert_no_proof_of((KEY,), transcript, planted)


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
