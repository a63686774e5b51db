"""The sequential path's wake-ups: receiver callbacks, the storage thread, direct writes.

A sequential call used to cost every member 17-28 trips through the event loop and
30-59 callbacks (a reader task, a receive loop, a drive loop, a sync loop, a thread hop
per fsync, a link task per message, a timer wake-up per leader message). These tests
count instead of timing: the bounds hold on a loaded machine too.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import pytest
from cluster_helpers import Register, free_port

import replobj
from replobj.errors import StorageError
from replobj.raft.messages import Message, TimeoutNow
from replobj.raft.types import LogIndex
from replobj.storage_thread import StorageSyncer, Target
from replobj.transport.faulty import FaultyTransport
from replobj.transport.memory import MemoryNetwork
from replobj.transport.tcp import TcpTransport

pytestmark = pytest.mark.anyio

SECRET = replobj.new_secret()
"""A random cluster secret for this module's nodes."""


class _BlockingStorage:
    """Only ``sync``: counts calls, can hold one until released, can fail."""

    def __init__(self) -> None:
        self.syncs = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.error: BaseException | None = None

    def sync(self) -> None:
        self.syncs += 1
        self.entered.set()
        self.release.wait(10)
        if self.error is not None:
            raise self.error


async def test_requests_made_during_a_sync_share_the_next_one_and_results_come_in_order() -> None:
    storage = _BlockingStorage()
    storage.release.clear()
    done: list[tuple[Target, BaseException | None, float]] = []
    finished = anyio.Event()

    def on_done(target: Target, error: BaseException | None) -> None:
        # a bare loop callback: anyio must still know the library (current_time, Event)
        done.append((target, error, anyio.current_time()))
        if len(done) == 2:
            finished.set()

    syncer = StorageSyncer(storage, on_done, "test-sync")  # type: ignore[arg-type]
    syncer.start()
    try:
        syncer.request((LogIndex(1), 1))
        await anyio.to_thread.run_sync(storage.entered.wait, 10)
        syncer.request((LogIndex(2), 1))
        syncer.request((LogIndex(3), 1))
        storage.release.set()
        with anyio.fail_after(10):
            await finished.wait()
    finally:
        await syncer.stop()
    assert [(target, error) for target, error, _ in done] == [((1, 1), None), ((3, 1), None)]
    assert storage.syncs == 2  # the two later requests were covered by one sync


async def test_a_failed_sync_is_reported_and_nothing_more_is_synced() -> None:
    storage = _BlockingStorage()
    storage.error = StorageError("injected EIO")
    done: list[tuple[Target, BaseException | None]] = []
    reported = anyio.Event()

    def on_done(target: Target, error: BaseException | None) -> None:
        done.append((target, error))
        reported.set()

    syncer = StorageSyncer(storage, on_done, "test-sync")  # type: ignore[arg-type]
    syncer.start()
    try:
        syncer.request((LogIndex(5), 2))
        syncer.request((LogIndex(6), 2))  # merged, and dropped once the first one failed
        with anyio.fail_after(10):
            await reported.wait()
    finally:
        await syncer.stop()
    assert done == [((5, 2), storage.error)]
    assert storage.syncs == 1


async def test_the_memory_transport_declines_a_receiver_and_keeps_its_inbox() -> None:
    network = MemoryNetwork()
    a, b = network.transport("a"), network.transport("b")
    async with a, FaultyTransport(b) as faulty:
        assert not faulty.set_receiver(lambda batch: None)
        a.send("b", TimeoutNow(1, "a"))
        assert await faulty.receive() == TimeoutNow(1, "a")


async def test_a_receiver_behind_faulty_tcp_gets_messages_in_order_without_partitioned_ones() -> (
    None
):
    pa, pb = free_port(), free_port()
    a = TcpTransport("a", ("127.0.0.1", pa), {"b": ("127.0.0.1", pb)}, secret=SECRET)
    b_inner = TcpTransport("b", ("127.0.0.1", pb), {"a": ("127.0.0.1", pa)}, secret=SECRET)
    got: list[Message] = []
    last = anyio.Event()

    def receiver(batch: list[Message]) -> None:
        got.extend(batch)
        if batch[-1].term == 4:
            last.set()

    async with a, FaultyTransport(b_inner) as b:
        assert b.set_receiver(receiver)
        b.partition("a", outgoing=False, incoming=True)
        a.send("b", TimeoutNow(1, "a"))
        with anyio.fail_after(10):
            while b.faults.blocked_incoming == 0:  # noqa: ASYNC110 (a counter, no event)
                await anyio.sleep(0.005)
        b.heal()
        for term in (2, 3, 4):
            a.send("b", TimeoutNow(term, "a"))
        with anyio.fail_after(10):
            await last.wait()
        assert [m.term for m in got] == [2, 3, 4]
        assert b.set_receiver(None)


class _Counts:
    """Counts asyncio loop iterations and callbacks run (patched in for one test)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.iterations = 0
        self.callbacks = 0
        run_once = asyncio.base_events.BaseEventLoop._run_once  # type: ignore[attr-defined]
        handle_run = asyncio.events.Handle._run

        def counted_run_once(loop: Any) -> None:
            self.iterations += 1
            run_once(loop)

        def counted_handle_run(handle: Any) -> None:
            self.callbacks += 1
            handle_run(handle)

        monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "_run_once", counted_run_once)
        monkeypatch.setattr(asyncio.events.Handle, "_run", counted_handle_run)


T = TypeVar("T")


async def _around_sequential_calls(
    where: str, calls: int, measure: Callable[[replobj.Node], T]
) -> tuple[T, T]:
    """Three members on one loop; ``measure(leader)`` before and after ``calls`` sequential
    calls on the leader or a follower (after a warm-up: connections up, sessions open)."""
    addresses = {f"n{i}": f"127.0.0.1:{free_port()}" for i in range(3)}
    nodes = {
        name: replobj.Node(name, listen=address, peers=addresses, secret=SECRET)
        for name, address in addresses.items()
    }
    proxies = {name: node.attach("register", Register()) for name, node in nodes.items()}
    async with anyio.create_task_group() as tasks:
        for node in nodes.values():
            await tasks.start(node.serve)
        leader = await nodes["n0"].wait_for_leader()
        target = leader if where == "leader" else next(n for n in nodes if n != leader)
        proxy = proxies[target]
        for value in range(20):
            await proxy.add(str(value))
        before = measure(nodes[leader])
        for value in range(calls):
            await proxy.add(str(value))
        after = measure(nodes[leader])
        for node in nodes.values():
            await node.aclose()
        tasks.cancel_scope.cancel()
    return before, after


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("where", ["leader", "follower"])
async def test_a_sequential_call_wakes_the_loop_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Three members on one asyncio loop; the bounds are about double today's cost.

    Before the receiver callbacks, the storage thread, direct writes and reading in the
    protocol, a call on the leader cost the three members together 22 loop iterations
    and 107 callbacks, on a follower 34 and 117; now about 4.5 and 13, 6 and 15.
    """
    counts = _Counts(monkeypatch)
    calls = 200
    before, after = await _around_sequential_calls(
        where, calls, lambda _: (counts.iterations, counts.callbacks)
    )
    iterations = (after[0] - before[0]) / calls
    callbacks = (after[1] - before[1]) / calls
    print(f"{where}: {iterations:.1f} loop iterations, {callbacks:.1f} callbacks per call")
    assert iterations <= (9 if where == "leader" else 12)
    assert callbacks <= (27 if where == "leader" else 31)


def test_a_cluster_works_under_plain_asyncio_run() -> None:
    """Not started by ``anyio.run``: loop callbacks (protocol reads, the storage thread)
    must still let anyio tell the library, or the first timer reset fails."""

    async def main() -> int:
        addresses = {f"n{i}": f"127.0.0.1:{free_port()}" for i in range(3)}
        nodes = {
            name: replobj.Node(name, listen=address, peers=addresses, secret=SECRET)
            for name, address in addresses.items()
        }
        proxies = {name: node.attach("register", Register()) for name, node in nodes.items()}
        async with anyio.create_task_group() as tasks:
            for node in nodes.values():
                await tasks.start(node.serve)
            await nodes["n0"].wait_for_leader()
            for proxy in proxies.values():
                for value in range(5):
                    count = await proxy.add(str(value))
            for node in nodes.values():
                await node.aclose()
            tasks.cancel_scope.cancel()
        return count

    assert asyncio.run(main()) == 15


@pytest.mark.parametrize("where", ["leader", "follower"])
async def test_a_sequential_call_costs_few_messages(
    monkeypatch: pytest.MonkeyPatch, where: str, anyio_backend_name: str
) -> None:
    """Counted, not timed. A call on the leader of three needs an AppendEntries to each
    follower and its reply once durable: four messages. It cost ten before replies that
    tell the leader nothing new were left out (one at once and one once durable per
    entry, one per commit push) and the commit push was deferred until the woken caller
    had submitted its next call (whose entry carries the commit index). A call on a
    follower adds its forwarded request, the leader's answer and the commit pushes (the
    caller waiting on the follower cannot submit on the leader). Trio runs the woken caller
    and the deferred push in no fixed order, so there the push often goes first."""
    sent: list[str] = []
    send = TcpTransport.send

    def counted(self: TcpTransport, to: str, message: Message) -> None:
        sent.append(type(message).__name__)
        send(self, to, message)

    monkeypatch.setattr(TcpTransport, "send", counted)
    calls = 200
    before, after = await _around_sequential_calls(
        where, calls, lambda leader: (len(sent), leader.runtime.raft.status().term, _rounds(leader))
    )
    assert before[1] == after[1], "no election during the calls"
    kinds = sent[before[0] : after[0]]
    rounds = after[2] - before[2]  # heartbeat rounds: 4 messages each, however slow the machine
    per_call = len(kinds) / calls
    print(
        f"{where}: {per_call:.2f} messages per call: "
        + ", ".join(f"{kind} {kinds.count(kind) / calls:.2f}" for kind in sorted(set(kinds)))
    )
    heartbeats = 4 * rounds / calls
    if anyio_backend_name == "trio":
        assert per_call <= (6.5 if where == "leader" else 8.5) + heartbeats
    else:
        assert per_call <= (4.5 if where == "leader" else 8.5) + heartbeats


def _rounds(leader: replobj.Node) -> int:
    """The leader's heartbeat (and read) rounds so far: its message sequence number."""
    return leader.runtime.raft._seq
