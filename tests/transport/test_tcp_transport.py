"""TcpTransport over real loopback sockets, on asyncio and trio."""

from __future__ import annotations

import logging
import os
import struct
import tracemalloc

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from transport_helpers import KEY, SECRET, receive_n, resend_until_received, wait_until
from wire_strategies import KINDS, sample_messages

from replobj import new_secret
from replobj.errors import AuthenticationError, TransportError, VersionMismatchError
from replobj.raft.messages import AppendEntries, Message, TimeoutNow
from replobj.raft.types import Entry
from replobj.secret import cluster_key
from replobj.transport.auth import Hello, RecordSealer, client_handshake
from replobj.transport.base import Transport
from replobj.transport.codec import WIRE_VERSION, encode_frame
from replobj.transport.tcp import TcpTransport

pytestmark = pytest.mark.anyio


def _tcp(node: str, port: int, peers: dict[str, int], **kwargs: object) -> TcpTransport:
    book = {name: ("127.0.0.1", p) for name, p in peers.items()}
    kwargs.setdefault("secret", SECRET)
    return TcpTransport(node, ("127.0.0.1", port), book, seed=1, **kwargs)  # type: ignore[arg-type]


def _by_kind(messages: list[Message]) -> dict[str, Message]:
    return {type(m).__name__: m for m in messages}


async def test_two_transports_exchange_every_kind(ports: list[int]) -> None:
    pa, pb, _ = ports
    async with (
        _tcp("a", pa, {"b": pb}, secret=SECRET) as a,
        _tcp("b", pb, {"a": pa}, secret=SECRET) as b,
    ):
        for msg in sample_messages("a"):
            a.send("b", msg)
        for msg in sample_messages("b"):
            b.send("a", msg)
        assert await receive_n(b, KINDS) == sample_messages("a")
        assert await receive_n(a, KINDS) == sample_messages("b")
        await wait_until(lambda: a.stats.sent == b.stats.sent == KINDS, "sent counters")
        assert b.stats.received == KINDS
        assert a.stats.rejected == b.stats.rejected == 0


async def test_three_transports_all_pairs(ports: list[int]) -> None:
    names = ["a", "b", "c"]
    book = dict(zip(names, ports, strict=True))
    transports = [_tcp(n, book[n], {m: p for m, p in book.items() if m != n}) for n in names]
    async with transports[0] as a, transports[1] as b, transports[2] as c:
        nodes = {"a": a, "b": b, "c": c}
        for src, t in nodes.items():
            for dst in nodes:
                if dst != src:
                    for msg in sample_messages(src):
                        t.send(dst, msg)
        for dst, t in nodes.items():
            got = await receive_n(t, 2 * KINDS)
            senders = sorted({m.sender for m in got})
            assert senders == sorted(set(names) - {dst})
            for src in senders:
                assert [m for m in got if m.sender == src] == sample_messages(src)


async def test_peer_restart_resumes_traffic(ports: list[int]) -> None:
    pa, pb, _ = ports
    async with _tcp("a", pa, {"b": pb}, secret=SECRET, backoff=(0.01, 0.05)) as a:
        async with _tcp("b", pb, {"a": pa}, secret=SECRET) as b:
            assert await resend_until_received(a, "b", b, TimeoutNow(1, "a")) == TimeoutNow(1, "a")
        async with _tcp("b", pb, {"a": pa}, secret=SECRET) as b2:
            got = await resend_until_received(a, "b", b2, TimeoutNow(2, "a"))
            assert got == TimeoutNow(2, "a")


async def test_wrong_secret_refused_listener_keeps_serving(
    ports: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    pa, pb, pc = ports
    caplog.set_level(logging.INFO, logger="replobj.transport")
    async with (
        _tcp("a", pa, {}, secret=SECRET) as a,
        _tcp("b", pb, {"a": pa}, secret=new_secret()) as b,
        _tcp("c", pc, {"a": pa}, secret=SECRET) as c,
    ):
        b.send("a", TimeoutNow(1, "b"))
        await wait_until(lambda: a.stats.rejected >= 1, "listener to refuse b")
        await wait_until(lambda: b.stats.last_error is not None, "b to record its failure")
        assert AuthenticationError.__name__ in str(b.stats.last_error)
        assert "failed to prove the cluster secret" in caplog.text
        c.send("a", TimeoutNow(1, "c"))
        assert await receive_n(a, 1) == [TimeoutNow(1, "c")]
        assert a.stats.received == 1


async def test_handshake_raises_authentication_error(ports: list[int]) -> None:
    async with _tcp("a", ports[0], {}, secret=SECRET) as a:
        stream = await anyio.connect_tcp("127.0.0.1", a.listen_address[1])
        async with stream:
            with pytest.raises(AuthenticationError):
                await client_handshake(
                    stream,
                    BufferedByteReceiveStream(stream),
                    key=cluster_key(new_secret().encode()),
                    node_id="x",
                    peer_id="a",
                )


async def test_version_mismatch_is_refused(
    ports: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    async with _tcp("a", ports[0], {}, secret=SECRET) as a:
        stream = await anyio.connect_tcp("127.0.0.1", a.listen_address[1])
        async with stream:
            await stream.send(
                Hello("x", "a", os.urandom(32), wire_version=WIRE_VERSION + 1).encode()
            )
            await wait_until(lambda: a.stats.rejected == 1, "listener to refuse the new version")
    assert "VersionMismatchError" in caplog.text
    with pytest.raises(VersionMismatchError, match=r"Python 3\.99"):
        Hello("x", "a", b"n" * 32, python=(3, 99)).check_compatible("peer 'x'")


async def test_huge_frame_header_refused_without_allocation(ports: list[int]) -> None:
    async with _tcp("a", ports[0], {}, secret=SECRET) as a:
        stream = await anyio.connect_tcp("127.0.0.1", a.listen_address[1])
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            await client_handshake(stream, reader, key=KEY, node_id="x", peer_id="a")
            tracemalloc.start()
            try:
                await stream.send(struct.pack(">I", 100 << 20) + b"\x00" * 1024)
                await wait_until(lambda: a.stats.rejected == 1, "the 100 MB record to be refused")
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert peak < 10 << 20, f"peak allocation {peak} bytes"
            with anyio.fail_after(5):
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await reader.receive()


async def test_garbage_and_forged_records_do_not_stop_listener(ports: list[int]) -> None:
    pa, pb, _ = ports
    async with _tcp("a", pa, {}, secret=SECRET) as a, _tcp("b", pb, {"a": pa}, secret=SECRET) as b:
        for _ in range(3):
            async with await anyio.connect_tcp("127.0.0.1", pa) as junk:
                await junk.send(os.urandom(4096))
        stream = await anyio.connect_tcp("127.0.0.1", pa)
        async with stream:
            await client_handshake(
                stream, BufferedByteReceiveStream(stream), key=KEY, node_id="x", peer_id="a"
            )
            await stream.send(
                RecordSealer(b"not the session key").seal(encode_frame(TimeoutNow(1, "x")))
            )
            await wait_until(lambda: a.stats.rejected >= 4, "garbage and forgery to be refused")
        b.send("a", TimeoutNow(3, "b"))
        assert await receive_n(a, 1) == [TimeoutNow(3, "b")]
        assert a.stats.received == 1


async def test_spoofed_sender_is_rejected(ports: list[int]) -> None:
    pa, pb, _ = ports
    async with _tcp("a", pa, {}, secret=SECRET) as a, _tcp("b", pb, {"a": pa}, secret=SECRET) as b:
        b.send("a", TimeoutNow(1, "c"))
        b.send("a", TimeoutNow(1, "b"))
        assert await receive_n(a, 1) == [TimeoutNow(1, "b")]
        assert a.stats.rejected == 1


async def test_queue_overflow_drops_and_counts(ports: list[int]) -> None:
    async with _tcp("a", ports[0], {"b": ports[1]}, queue_limit=4) as a:
        for i in range(10):
            a.send("b", TimeoutNow(i, "a"))
        a.send("nobody", TimeoutNow(1, "a"))
        assert a.stats.dropped == 7


async def test_oversized_message_dropped_with_error(ports: list[int]) -> None:
    async with _tcp("a", ports[0], {"b": ports[1]}, max_frame_bytes=64) as a:
        a.send("b", AppendEntries(1, "a", 0, 0, (Entry(1, 1, payload=b"x" * 100),), 0))
        assert a.stats.dropped == 1
        assert "max_append_bytes" in str(a.stats.last_error)


async def test_bind_failure_names_the_address(ports: list[int]) -> None:
    async with _tcp("a", ports[0], {}):
        with pytest.raises(TransportError, match=f"127.0.0.1:{ports[0]}"):
            await _tcp("b", ports[0], {}).start()


async def test_silent_connections_cannot_exhaust_the_listener(ports: list[int]) -> None:
    pa, pb, _ = ports
    strict = {"max_pending_handshakes": 2, "handshake_timeout": 0.3}
    async with (
        _tcp("a", pa, {}, secret=SECRET, **strict) as a,
        _tcp("b", pb, {"a": pa}, secret=SECRET, backoff=(0.01, 0.05)) as b,
    ):
        silent = [await anyio.connect_tcp("127.0.0.1", pa) for _ in range(3)]
        try:
            await wait_until(lambda: a.stats.rejected >= 1, "the third silent peer to be refused")
            assert await resend_until_received(b, "a", a, TimeoutNow(1, "b")) == TimeoutNow(1, "b")
            assert a.stats.rejected >= 3
        finally:
            for stream in silent:
                await stream.aclose()


async def test_update_peers_moves_a_link(ports: list[int]) -> None:
    pa, pb, pc = ports
    async with _tcp("a", pa, {"b": pb}, secret=SECRET) as a:
        assert isinstance(a, Transport)
        async with _tcp("b", pb, {}, secret=SECRET) as b:
            assert await resend_until_received(a, "b", b, TimeoutNow(1, "a")) == TimeoutNow(1, "a")
        async with _tcp("b", pc, {}, secret=SECRET) as moved:
            a.update_peers({"b": ("127.0.0.1", pc)})
            assert await resend_until_received(a, "b", moved, TimeoutNow(2, "a")) == TimeoutNow(
                2, "a"
            )
        a.update_peers({})
        a.send("b", TimeoutNow(3, "a"))
        assert a.stats.dropped == 1
        with pytest.raises(TransportError, match="only once"):
            await a.start()


async def test_full_inbox_slows_the_peer_instead_of_losing(ports: list[int]) -> None:
    pa, pb, _ = ports
    async with (
        _tcp("a", pa, {}, secret=SECRET, inbox_limit=4) as a,
        _tcp("b", pb, {"a": pa}, secret=SECRET) as b,
    ):
        for i in range(200):
            b.send("a", TimeoutNow(i, "b"))
        await wait_until(lambda: b.stats.sent == 200, "all 200 frames written")
        got = [m.term for m in await receive_n(a, 200)]
        assert got == list(range(200))
        assert a.stats.rejected == b.stats.dropped == 0


async def test_a_send_to_a_link_whose_task_ended_drops_and_reopens(ports: list[int]) -> None:
    """A link's task that ended for good (cancelled, or an unexpected error) closes its
    queue; a send must then count a drop and open a new link, not raise into the node
    (seen: ``BrokenResourceError`` from ``send`` stopped a leader's drive loop, trio + TLS)."""
    pa, pb, _ = ports
    async with _tcp("a", pa, {"b": pb}, backoff=(0.01, 0.05)) as a, _tcp("b", pb, {"a": pa}) as b:
        assert await resend_until_received(a, "b", b, TimeoutNow(1, "a")) == TimeoutNow(1, "a")
        link = a._links["b"]
        link.frames.close()  # what the link task's exit does to its queue
        link.busy = True  # frames queued behind the task: no direct write
        a.send("b", TimeoutNow(2, "a"))
        assert a.stats.dropped == 1
        assert a._links.get("b") is not link, "the dead link is forgotten"
        assert await resend_until_received(a, "b", b, TimeoutNow(3, "a")) == TimeoutNow(3, "a")
