"""Transport benchmarks: codec choice, MAC cost, and two-process loopback throughput/RTT.

Run ``.venv/bin/python benchmarks/transport.py`` from the repository root. It prints:

1. the codec micro-benchmark (msgspec MessagePack vs a hand-written ``struct`` codec);
2. the cost of HMAC-SHA256 per frame vs per coalesced batch;
3. echo throughput and round-trip latency between this process and a child process
   for a bare anyio TCP echo (the floor), TCP with coalescing, TCP with one message per
   write, and UDP.

The figures are recorded in ``docs/wire.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio.lowlevel

import replobj
from replobj.raft.messages import AppendEntries, AppendEntriesReply
from replobj.raft.types import Entry, EntryKind
from replobj.transport.codec import decode_frame, encode_frame
from replobj.transport.tcp import TcpTransport
from replobj.transport.udp import UdpTransport

SECRET = os.environ.setdefault("REPLOBJ_BENCH_SECRET", replobj.new_secret()).encode()
"""A random secret per run; the echo child inherits it through the environment."""
HOST = "127.0.0.1"
MODES = ("bare-echo", "tcp-coalesce", "tcp-per-write", "udp")
_REPLY = struct.Struct(">QB?QQQQq")
_AE_HEAD = struct.Struct(">QBQQQqI")
_ENTRY = struct.Struct(">QQBI")


def struct_encode(msg: AppendEntries | AppendEntriesReply) -> bytes:
    """The hand-written alternative: fixed fields with ``struct``, strings length-prefixed."""
    sender = msg.sender.encode()
    if isinstance(msg, AppendEntriesReply):
        return (
            _REPLY.pack(
                msg.term,
                len(sender),
                msg.success,
                msg.match_index,
                msg.reject_index,
                msg.hint_index,
                msg.hint_term,
                msg.seq,
            )
            + sender
        )
    parts = [
        _AE_HEAD.pack(
            msg.term,
            len(sender),
            msg.prev_index,
            msg.prev_term,
            msg.leader_commit,
            msg.seq,
            len(msg.entries),
        ),
        sender,
    ]
    for e in msg.entries:
        parts += [_ENTRY.pack(e.term, e.index, e.kind, len(e.payload)), e.payload]
    return b"".join(parts)


def struct_decode_reply(data: bytes) -> AppendEntriesReply:
    """Inverse of :func:`struct_encode` for replies."""
    term, n, ok, match, reject, hint_i, hint_t, seq = _REPLY.unpack_from(data)
    sender = data[_REPLY.size : _REPLY.size + n].decode()
    return AppendEntriesReply(term, sender, ok, match, reject, hint_i, hint_t, seq)


def struct_decode_append(data: bytes) -> AppendEntries:
    """Inverse of :func:`struct_encode` for AppendEntries."""
    term, n, prev_i, prev_t, commit, seq, count = _AE_HEAD.unpack_from(data)
    pos = _AE_HEAD.size + n
    sender = data[_AE_HEAD.size : pos].decode()
    entries = []
    for _ in range(count):
        e_term, e_index, kind, size = _ENTRY.unpack_from(data, pos)
        pos += _ENTRY.size
        entries.append(Entry(e_term, e_index, EntryKind(kind), data[pos : pos + size]))
        pos += size
    return AppendEntries(term, sender, prev_i, prev_t, tuple(entries), commit, seq)


def _per_op_us(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / rounds * 1e6


def codec_table() -> list[tuple[str, float, float, int]]:
    """Encode and decode µs per message and sizes, msgspec vs struct."""
    samples: dict[str, tuple[Any, Callable[[bytes], Any]]] = {
        "AppendEntriesReply": (
            AppendEntriesReply(7, "node-b", True, match_index=123456, seq=99),
            struct_decode_reply,
        ),
        "AppendEntries 1x100B": (
            AppendEntries(7, "node-a", 10, 7, (Entry(7, 11, payload=b"x" * 100),), 10, 5),
            struct_decode_append,
        ),
        "AppendEntries 64x100B": (
            AppendEntries(
                7,
                "node-a",
                10,
                7,
                tuple(Entry(7, 11 + i, payload=b"x" * 100) for i in range(64)),
                10,
                5,
            ),
            struct_decode_append,
        ),
    }
    rows = []
    for name, (msg, s_decode) in samples.items():
        frame, packed = encode_frame(msg), struct_encode(msg)
        if decode_frame(frame) != msg or s_decode(packed) != msg:
            raise RuntimeError(f"a codec does not round-trip {name}")
        rounds = 2000 if "64" in name else 50000
        encode, decode = partial(encode_frame, msg), partial(decode_frame, frame)
        rows.append((f"{name} msgspec", _per_op_us(encode, rounds), _per_op_us(decode, rounds),
                     len(frame)))  # fmt: skip
        encode, decode = partial(struct_encode, msg), partial(s_decode, packed)
        rows.append((f"{name} struct", _per_op_us(encode, rounds), _per_op_us(decode, rounds),
                     len(packed) + 6))  # fmt: skip
    return rows


def mac_table() -> list[tuple[str, float]]:
    """µs of HMAC-SHA256 per 40-byte frame, alone and amortised over a 100-frame batch."""
    key, frame = b"k" * 32, b"f" * 40
    batch = frame * 100
    one = _per_op_us(lambda: hmac.digest(key, frame, hashlib.sha256), 100000)
    many = _per_op_us(lambda: hmac.digest(key, batch, hashlib.sha256), 20000) / 100
    return [("HMAC per 40-byte frame", one), ("HMAC per frame in a 100-frame batch", many)]


def _make(mode: str, node: str, port: int, peer: str, peer_port: int) -> Any:
    peers = {peer: (HOST, peer_port)}
    if mode == "udp":
        return UdpTransport(node, (HOST, port), peers, secret=SECRET)
    return TcpTransport(
        node,
        (HOST, port),
        peers,
        secret=SECRET,
        coalesce=mode == "tcp-coalesce",
        queue_limit=1 << 16,
    )


async def serve(mode: str, port: int, peer_port: int) -> None:
    """Child process: echo every message back to ``a`` (or every byte, for bare-echo)."""
    if mode == "bare-echo":

        async def echo(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                async for chunk in stream:
                    await stream.send(chunk)

        listener = await anyio.create_tcp_listener(local_host=HOST, local_port=port)
        print("ready", flush=True)
        await listener.serve(echo)
        return
    async with _make(mode, "b", port, "a", peer_port) as node:
        print("ready", flush=True)
        while True:
            for msg in await node.receive_batch():
                node.send("a", AppendEntriesReply(msg.term, "b", True, match_index=1, seq=msg.seq))


async def _bare_client(port: int, count: int, window: int) -> tuple[float, list[float]]:
    payload = b"p" * 32
    async with await anyio.connect_tcp(HOST, port) as stream:
        rtts = []
        for _ in range(2000):
            start = time.perf_counter()
            await stream.send(payload)
            got = 0
            while got < len(payload):
                got += len(await stream.receive())
            rtts.append(time.perf_counter() - start)
        start = time.perf_counter()
        received = 0

        async def reader() -> None:
            nonlocal received
            while received < count * len(payload):
                received += len(await stream.receive())

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            for i in range(count):
                while i * len(payload) - received > window * len(payload):
                    await anyio.lowlevel.checkpoint()
                await stream.send(payload)
        return count / (time.perf_counter() - start), rtts


async def _transport_client(
    mode: str, port: int, peer_port: int, count: int, window: int
) -> tuple[float, list[float]]:
    async with _make(mode, "a", port, "b", peer_port) as node:
        probe = AppendEntries(1, "a", 0, 0, (), 0, 0)
        with anyio.fail_after(10):
            while True:
                node.send("b", probe)
                with anyio.move_on_after(0.2):
                    await node.receive()
                    break
        rtts = []
        for i in range(2000):
            start = time.perf_counter()
            node.send("b", AppendEntries(1, "a", 0, 0, (), 0, i))
            with anyio.move_on_after(1):
                while (await node.receive()).seq != i:
                    pass
                rtts.append(time.perf_counter() - start)
        start = time.perf_counter()
        sent = done = 0
        while done < count:
            while sent < count and sent - done < window:
                node.send("b", AppendEntries(1, "a", 0, 0, (), 0, sent))
                sent += 1
            with anyio.move_on_after(0.2) as scope:
                done += len(await node.receive_batch())
            if scope.cancelled_caught:
                done = sent
        return count / (time.perf_counter() - start), rtts


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def run_mode(mode: str, count: int, window: int) -> tuple[float, float, float]:
    """Start the echo child, measure from here; returns (echoes/s, p50 µs, p99 µs)."""
    kind = socket.SOCK_DGRAM if mode == "udp" else socket.SOCK_STREAM
    here, there = _free_port(kind), _free_port(kind)
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", mode, "--port", str(there), "--peer-port", str(here)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if child.stdout is None or child.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {mode} echo child did not start")
        if mode == "bare-echo":
            rate, rtts = anyio.run(_bare_client, there, count, window)
        else:
            rate, rtts = anyio.run(_transport_client, mode, here, there, count, window)
    finally:
        child.terminate()
        child.wait()
    cuts = statistics.quantiles(rtts, n=100)
    return rate, cuts[49] * 1e6, cuts[98] * 1e6


def main() -> None:
    """Run everything and print the tables (markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=MODES)
    parser.add_argument("--port", type=int)
    parser.add_argument("--peer-port", type=int)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--skip-codec", action="store_true")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset")
    args = parser.parse_args()
    if args.serve:
        logging.getLogger("replobj.transport").setLevel(logging.CRITICAL)
        anyio.run(serve, args.serve, args.port, args.peer_port)
        return
    print(f"Python {sys.version.split()[0]}, {sys.platform}\n")
    if not args.skip_codec:
        print("| codec | encode µs | decode µs | bytes |\n|---|---|---|---|")
        for name, enc, dec, size in codec_table():
            print(f"| {name} | {enc:.2f} | {dec:.2f} | {size} |")
        print("\n| MAC | µs |\n|---|---|")
        for name, cost in mac_table():
            print(f"| {name} | {cost:.3f} |")
    print(f"\n{args.count} echoed AppendEntries, window {args.window}; RTT over 2000 ping-pongs\n")
    print("| mode | echoes/s | RTT p50 µs | RTT p99 µs |\n|---|---|---|---|")
    for mode in args.modes.split(","):
        rate, p50, p99 = run_mode(mode, args.count, args.window)
        print(f"| {mode} | {rate:,.0f} | {p50:.0f} | {p99:.0f} |", flush=True)


if __name__ == "__main__":
    main()
