"""FaultyTransport: seeded drop, duplication, delay and partitions, changed at run time."""

from __future__ import annotations

import anyio
import pytest
from transport_helpers import SECRET, receive_n, resend_until_received
from wire_strategies import KINDS, sample_messages

from replobj.raft.messages import Message, TimeoutNow
from replobj.transport.base import Transport
from replobj.transport.faulty import FaultyTransport
from replobj.transport.memory import MemoryNetwork
from replobj.transport.tcp import TcpTransport

pytestmark = pytest.mark.anyio
SEED = 20261125
END = 1_000_000


async def _receive_until(
    transport: Transport, last_term: int, within: float = 10.0
) -> list[Message]:
    """Receive up to (not including) the message of term ``last_term``, with a deadline."""
    got: list[Message] = []
    with anyio.fail_after(within):
        while (message := await transport.receive()).term != last_term:
            got.append(message)
    return got


def test_memory_and_faulty_transports_satisfy_the_protocol() -> None:
    network = MemoryNetwork()
    assert isinstance(network.transport("a"), Transport)
    assert isinstance(FaultyTransport(network.transport("b")), Transport)


async def test_drop_and_duplicate_rates_are_seeded() -> None:
    print(f"seed {SEED}")
    outcomes = []
    for _ in range(2):
        network = MemoryNetwork()
        async with (
            FaultyTransport(
                network.transport("a"), seed=SEED, drop_rate=0.3, duplicate_rate=0.2
            ) as a,
            network.transport("b") as b,
        ):
            for i in range(200):
                a.send("b", TimeoutNow(i, "a"))
            a.drop_rate = a.duplicate_rate = 0.0
            a.send("b", TimeoutNow(END, "a"))  # in order after the 200: the end marker
            got = [m.term for m in await _receive_until(b, END)]
            outcomes.append((got, a.faults))
    (got, faults), (again, _) = outcomes
    assert got == again
    assert 30 < faults.dropped < 90
    assert 15 < faults.duplicated < 60
    assert len(got) == 200 - faults.dropped + faults.duplicated


async def test_delay_reorders_and_still_delivers() -> None:
    print(f"seed {SEED}")
    network = MemoryNetwork(through_codec=True)
    async with (
        FaultyTransport(network.transport("a"), seed=SEED, delay=(0.0, 0.05)) as a,
        network.transport("b") as b,
    ):
        for i in range(50):
            a.send("b", TimeoutNow(i, "a"))
        got = [m.term for m in await receive_n(b, 50)]
        assert sorted(got) == list(range(50))
        assert got != list(range(50))
        assert a.faults.delayed == 50


async def test_one_way_and_two_way_partitions_change_at_run_time() -> None:
    """What must not arrive is followed by an end marker that does (the memory network
    delivers into a FIFO inbox at send time): everything received before the marker is
    everything that got through, without waiting for a fixed window."""
    network = MemoryNetwork()
    async with (
        FaultyTransport(network.transport("a"), seed=SEED) as a,
        FaultyTransport(network.transport("b"), seed=SEED) as b,
        network.transport("c") as witness,
    ):
        a.partition("b", incoming=False)
        a.send("b", TimeoutNow(1, "a"))
        b.send("a", TimeoutNow(1, "b"))
        assert await receive_n(a, 1) == [TimeoutNow(1, "b")]
        a.inner.send("b", TimeoutNow(END, "a"))  # the marker: a's path to b, past the partition
        assert await _receive_until(b, END) == []
        a.partition("b")
        b.send("a", TimeoutNow(2, "b"))
        witness.send("a", TimeoutNow(END, "c"))  # a blocks what comes from b, not from c
        assert await _receive_until(a, END) == []
        assert a.faults.blocked_outgoing == 1
        assert a.faults.blocked_incoming == 1
        a.heal()
        a.send("b", TimeoutNow(3, "a"))
        b.send("a", TimeoutNow(3, "b"))
        assert await receive_n(b, 1) == [TimeoutNow(3, "a")]
        assert await receive_n(a, 1) == [TimeoutNow(3, "b")]


async def test_wraps_tcp_transport(ports: list[int]) -> None:
    pa, pb, _ = ports
    a_inner = TcpTransport("a", ("127.0.0.1", pa), {"b": ("127.0.0.1", pb)}, secret=SECRET)
    b_inner = TcpTransport("b", ("127.0.0.1", pb), {"a": ("127.0.0.1", pa)}, secret=SECRET)
    async with FaultyTransport(a_inner, seed=SEED, drop_rate=0.5) as a, b_inner as b:
        assert await resend_until_received(a, "b", b, TimeoutNow(1, "a")) == TimeoutNow(1, "a")
        a.drop_rate = 0.0
        for msg in sample_messages("a"):
            a.send("b", msg)
        got: list[Message] = []
        with anyio.fail_after(5):
            while len(got) < KINDS:
                msg = await b.receive()
                if msg != TimeoutNow(1, "a"):
                    got.append(msg)
        assert got == sample_messages("a")
