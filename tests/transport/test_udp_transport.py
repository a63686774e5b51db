"""UdpTransport over real loopback sockets, on asyncio and trio."""

from __future__ import annotations

import os
import socket

import anyio
import pytest
from transport_helpers import SECRET, free_port, receive_n, resend_until_received, wait_until
from wire_strategies import KINDS, sample_messages

from replobj import new_secret
from replobj.errors import ProtocolError, TransportError
from replobj.raft.messages import AppendEntries, TimeoutNow
from replobj.raft.types import Entry
from replobj.transport.codec import encode_frame
from replobj.transport.udp import UDP_OVERHEAD_BYTES, ReplayWindow, UdpTransport

pytestmark = pytest.mark.anyio


@pytest.fixture
def udp_ports() -> list[int]:
    """Three free UDP ports; printed so a failing run can be replayed."""
    chosen = [free_port(socket.SOCK_DGRAM) for _ in range(3)]
    print(f"loopback UDP ports: {chosen}")
    return chosen


def _udp(node: str, port: int, peers: dict[str, int], **kwargs: object) -> UdpTransport:
    book = {name: ("127.0.0.1", p) for name, p in peers.items()}
    kwargs.setdefault("secret", SECRET)
    return UdpTransport(node, ("127.0.0.1", port), book, **kwargs)  # type: ignore[arg-type]


async def test_three_transports_exchange_every_kind(udp_ports: list[int]) -> None:
    names = ["a", "b", "c"]
    book = dict(zip(names, udp_ports, strict=True))
    made = [
        _udp(n, book[n], {m: p for m, p in book.items() if m != n}, secret=SECRET) for n in names
    ]
    async with made[0] as a, made[1] as b, made[2] as c:
        nodes = {"a": a, "b": b, "c": c}
        for src, t in nodes.items():
            for dst in nodes:
                if dst != src:
                    for msg in sample_messages(src):
                        t.send(dst, msg)
        for dst, t in nodes.items():
            got = await receive_n(t, 2 * KINDS)
            for src in set(names) - {dst}:
                assert [m for m in got if m.sender == src] == sample_messages(src)
            assert t.stats.rejected == 0


async def test_replayed_and_forged_datagrams_are_rejected(udp_ports: list[int]) -> None:
    pa, pb, _ = udp_ports
    async with _udp("a", pa, {}, secret=SECRET) as a:
        forger = UdpTransport("b", ("127.0.0.1", pb), secret=new_secret())
        sender = UdpTransport("b", ("127.0.0.1", pb), secret=SECRET)
        good = sender.seal("a", encode_frame(TimeoutNow(1, "b")))
        misaddressed = sender.seal("c", encode_frame(TimeoutNow(1, "b")))
        forged = forger.seal("a", encode_frame(TimeoutNow(2, "b")))
        async with await anyio.create_udp_socket(local_host="127.0.0.1") as raw:
            for datagram in (good, good, misaddressed, forged, os.urandom(200), b"x"):
                await raw.sendto(datagram, "127.0.0.1", pa)
            assert await receive_n(a, 1) == [TimeoutNow(1, "b")]
            await wait_until(lambda: a.stats.rejected == 5, "five bad datagrams to be refused")
            later = sender.seal("a", encode_frame(TimeoutNow(3, "b")))
            await raw.sendto(later, "127.0.0.1", pa)
            assert await receive_n(a, 1) == [TimeoutNow(3, "b")]


async def test_restarted_sender_is_accepted_with_new_epoch(udp_ports: list[int]) -> None:
    pa, pb, _ = udp_ports
    async with _udp("a", pa, {"b": pb}) as a:
        async with _udp("b", pb, {"a": pa}) as b:
            assert await resend_until_received(b, "a", a, TimeoutNow(1, "b")) == TimeoutNow(1, "b")
        for _ in range(3):
            a.send("b", TimeoutNow(1, "a"))
        await wait_until(lambda: a.stats.sent + a.stats.dropped == 3, "sends to the dead peer")
        async with _udp("b", pb, {"a": pa}) as b2:
            assert await resend_until_received(b2, "a", a, TimeoutNow(2, "b")) == TimeoutNow(2, "b")


async def test_size_limit_is_enforced_and_exposed(udp_ports: list[int]) -> None:
    pa, pb, _ = udp_ports
    async with (
        _udp("a", pa, {"b": pb}, max_datagram_bytes=2000) as a,
        _udp("b", pb, {"a": pa}, max_datagram_bytes=2000) as b,
    ):
        assert a.max_message_bytes == 2000 - UDP_OVERHEAD_BYTES
        fits = a.max_message_bytes - 4 - 64
        a.send("b", AppendEntries(1, "a", 0, 0, (Entry(1, 1, payload=b"x" * fits),), 0))
        a.send("b", AppendEntries(1, "a", 0, 0, (Entry(1, 1, payload=b"x" * 2000),), 0))
        assert a.stats.dropped == 1
        assert "FrameTooLargeError" in str(a.stats.last_error)
        (got,) = await receive_n(b, 1)
        assert isinstance(got, AppendEntries)
        assert len(got.entries[0].payload) == fits


def test_replay_window() -> None:
    window = ReplayWindow()
    assert window.accept(5, 10)
    assert not window.accept(5, 10)
    assert window.accept(5, 12)
    assert window.accept(5, 11)
    assert not window.accept(5, 11)
    assert window.accept(5, 100)
    assert not window.accept(5, 36)
    assert window.accept(5, 37)
    assert not window.accept(4, 1000)
    assert window.accept(6, 1)


def test_unseal_refuses_truncated_datagrams() -> None:
    sender = UdpTransport("b", ("127.0.0.1", 1), secret=SECRET)
    receiver = UdpTransport("a", ("127.0.0.1", 2), secret=SECRET)
    datagram = sender.seal("a", encode_frame(TimeoutNow(1, "b")))
    for cut in range(len(datagram)):
        with pytest.raises(ProtocolError):
            receiver.unseal(datagram[:cut])
    assert receiver.unseal(datagram) == TimeoutNow(1, "b")


async def test_bind_failure_names_the_address(udp_ports: list[int]) -> None:
    async with _udp("a", udp_ports[0], {}):
        with pytest.raises(TransportError, match=f"127.0.0.1:{udp_ports[0]}"):
            await _udp("b", udp_ports[0], {}).start()


async def test_a_peer_missing_from_the_book_is_answered_once_it_has_proved_itself(
    udp_ports: list[int],
) -> None:
    """A member restarted with an old peer list knows nothing of a member added later; the
    new member's authenticated datagrams must teach its address (the TCP hello does the
    same), or the restarted member can never answer the leader and never catches up."""
    pa, pb, _ = udp_ports
    async with _udp("a", pa, {}, secret=SECRET) as a, _udp("b", pb, {"a": pa}, secret=SECRET) as b:
        a.send("b", TimeoutNow(1, "a"))
        assert a.stats.dropped == 1, "a has no address for b yet"
        assert await resend_until_received(b, "a", a, TimeoutNow(2, "b")) == TimeoutNow(2, "b")
        assert await resend_until_received(a, "b", b, TimeoutNow(3, "a")) == TimeoutNow(3, "a")
        a.update_peers({})
        assert await resend_until_received(a, "b", b, TimeoutNow(4, "a")) == TimeoutNow(4, "a")


async def test_an_unauthenticated_datagram_teaches_no_address(udp_ports: list[int]) -> None:
    pa, pb, _ = udp_ports
    async with _udp("a", pa, {}, secret=SECRET) as a:
        forger = UdpTransport("b", ("127.0.0.1", pb), secret=new_secret())
        async with await anyio.create_udp_socket(local_host="127.0.0.1") as raw:
            await raw.sendto(forger.seal("a", encode_frame(TimeoutNow(1, "b"))), "127.0.0.1", pa)
            await wait_until(lambda: a.stats.rejected == 1, "the forged datagram to be refused")
        a.send("b", TimeoutNow(1, "a"))
        assert a.stats.dropped == 1
