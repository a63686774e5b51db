"""TLS around the PAKE handshake, with certificates from trustme and checks on (issue 13)."""

from __future__ import annotations

import ssl

import pytest
import trustme
from transport_helpers import SECRET, receive_n, wait_until
from wire_strategies import KINDS, sample_messages

from replobj.errors import TransportError
from replobj.raft.messages import TimeoutNow
from replobj.transport.tcp import TcpTransport
from replobj.transport.tls import TlsHandshakeError

pytestmark = pytest.mark.anyio


def _contexts(ca: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1 signed by ``ca``, and a client
    context that trusts ``ca`` only (hostname and chain checked)."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def _tcp(node: str, port: int, peers: dict[str, int], **kwargs: object) -> TcpTransport:
    book = {name: ("127.0.0.1", p) for name, p in peers.items()}
    return TcpTransport(node, ("127.0.0.1", port), book, secret=SECRET, **kwargs)  # type: ignore[arg-type]


async def test_tls_links_carry_every_kind(ports: list[int]) -> None:
    server, client = _contexts(trustme.CA())
    assert client.verify_mode == ssl.CERT_REQUIRED
    assert client.check_hostname
    pa, pb, _ = ports
    tls = {"server_ssl": server, "client_ssl": client}
    async with _tcp("a", pa, {"b": pb}, **tls) as a, _tcp("b", pb, {"a": pa}, **tls) as b:
        for msg in sample_messages("a"):
            a.send("b", msg)
        assert await receive_n(b, KINDS) == sample_messages("a")
        assert a.stats.rejected == b.stats.rejected == 0


async def test_a_plain_peer_is_refused_by_a_tls_listener(ports: list[int]) -> None:
    server, _ = _contexts(trustme.CA())
    pa, pb, _ = ports
    async with _tcp("c", pb, {"a": pa}) as plain, _tcp("a", pa, {}, server_ssl=server) as a:
        plain.send("a", TimeoutNow(1, "c"))
        await wait_until(lambda: a.stats.rejected >= 1, "TLS listener to refuse a plain peer")
        assert a.stats.received == 0


async def test_a_certificate_from_another_ca_is_refused_with_a_clear_error(
    ports: list[int],
) -> None:
    server, _ = _contexts(trustme.CA())
    _, trusts_other_ca = _contexts(trustme.CA())
    pa, pb, _ = ports
    async with (
        _tcp("a", pa, {}, server_ssl=server) as a,
        _tcp("b", pb, {"a": pa}, client_ssl=trusts_other_ca) as b,
    ):
        b.send("a", TimeoutNow(1, "b"))
        await wait_until(lambda: b.stats.last_error is not None, "b to record its failure")
        error = str(b.stats.last_error)
        assert TlsHandshakeError.__name__ in error
        assert "certificate" in error, error
        assert "client_ssl" in error, error
        assert issubclass(TlsHandshakeError, TransportError)
        await wait_until(lambda: a.stats.rejected >= 1, "a to count the failed TLS handshake")
        assert a.stats.received == 0
