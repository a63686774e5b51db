"""Linearizable reads in shared rounds (issue 11): one ReadIndex request per round.

The reads that arrive between two drains of the core share one request, one waiter flag
and one deadline. What must hold: a read never joins a request the core already
registered (its read index and heartbeat round would predate the read); a round with no
answer fails by itself so its readers retry; and the reads still see every write
acknowledged before they started, on both backends.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import anyio
import pytest
from cluster_helpers import Register, free_port

import replobj
from replobj import errors
from replobj.raft.node import RaftNode
from replobj.raft.types import Refusal, RefusalReason, Role
from replobj.read_rounds import ReadRounds
from replobj.runtime import RaftRuntime

pytestmark = pytest.mark.anyio

SECRET = replobj.new_secret()
"""A random cluster secret for this module's nodes."""


class StubCore:
    """What :class:`ReadRounds` uses of the core, recording the requests it registers."""

    def __init__(self) -> None:
        self.role = Role.LEADER
        self.leader: str | None = "n0"
        self.registered: list[int] = []
        self.refuse = False

    def read_index(self, request_id: int) -> Refusal | None:
        if self.refuse:
            return Refusal(RefusalReason.NO_LEADER, "no leader is known; retry shortly")
        self.registered.append(request_id)
        return None


def _rounds(core: StubCore, attempt: float = 10.0) -> ReadRounds:
    return ReadRounds(cast(RaftNode, core), attempt)


async def test_reads_join_the_open_round_until_it_is_handed_to_the_core() -> None:
    core = StubCore()
    rounds = _rounds(core)
    first, opened = rounds.join()
    second, opened_again = rounds.join()
    assert opened
    assert not opened_again
    assert second is first
    assert core.registered == []  # nothing registered before the drain: joiners still welcome
    rounds.flush(7)
    assert core.registered == [7]
    later, opened_later = rounds.join()  # the core has the request: a new read may not join
    assert opened_later
    assert later is not first
    rounds.ready(7, 41)
    assert await first.outcome() == 41
    assert not later.done
    rounds.flush(8)
    rounds.failed(8, "leadership was lost")
    failure = await later.outcome()
    assert isinstance(failure, errors.ReadFailedError)
    assert len(rounds) == 0


async def test_a_round_without_an_answer_fails_at_its_deadline() -> None:
    core = StubCore()
    rounds = _rounds(core, attempt=0.5)
    sent, _ = rounds.join()
    rounds.flush(1)
    unsent, _ = rounds.join()
    now = time.monotonic()
    rounds.expire(now)
    assert not sent.done
    assert not unsent.done
    rounds.expire(now + 1.0)
    assert isinstance(await sent.outcome(), errors.ReadFailedError)
    assert isinstance(await unsent.outcome(), errors.ReadFailedError)
    rounds.ready(1, 5)  # a late answer for a round that gave up is ignored
    assert len(rounds) == 0


async def test_a_round_the_core_refuses_fails_and_no_leader_refuses_at_once() -> None:
    core = StubCore()
    rounds = _rounds(core)
    refused, _ = rounds.join()
    core.refuse = True
    rounds.flush(1)
    assert isinstance(await refused.outcome(), errors.ReadFailedError)
    core.role, core.leader = Role.FOLLOWER, None
    with pytest.raises(errors.NoLeaderError):
        rounds.join()
    core.role = Role.CANDIDATE
    with pytest.raises(errors.NoLeaderError):
        rounds.join()
    core.role, core.leader = Role.FOLLOWER, "n1"
    assert rounds.join()[1]


async def test_concurrent_reads_share_rounds_and_see_every_acknowledged_write() -> None:
    node = replobj.Node(
        "n0", secret=SECRET, listen=f"127.0.0.1:{free_port()}", election_timeout=0.4
    )
    register = node.attach("reg", Register())
    async with anyio.create_task_group() as tasks:
        await tasks.start(node.serve)
        await node.wait_for_leader()
        runtime: RaftRuntime = node.runtime
        registered: list[int] = []
        real_read_index = runtime.raft.read_index

        def counting_read_index(request_id: int) -> Refusal | None:
            registered.append(request_id)
            return real_read_index(request_id)

        runtime.raft.read_index = counting_read_index  # type: ignore[method-assign]
        seen: list[int] = []

        async def reader(written: int) -> None:
            values = await register.snapshot_values()
            seen.append(len(values))
            assert len(values) >= written

        for written in range(1, 4):
            await register.add(f"v{written}")
            async with anyio.create_task_group() as readers:
                for _ in range(200):
                    readers.start_soon(reader, written)
        assert len(seen) == 600
        assert 3 <= len(registered) <= 12, registered  # a round or a few per burst, not 600
        assert len(runtime._reads) == 0
        await node.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_reads_wake_the_event_loop_about_once_each(anyio_backend: str) -> None:
    """Counts asyncio callbacks per read at 500 in flight: one task wake-up per read (an
    ``anyio.Event`` and two cancel scopes per read cost more). Not timing-based."""
    node = replobj.Node(
        "n0", secret=SECRET, listen=f"127.0.0.1:{free_port()}", election_timeout=0.4
    )
    register = node.attach("reg", Register())
    async with anyio.create_task_group() as tasks:
        await tasks.start(node.serve)
        await node.wait_for_leader()
        await register.add("x")
        counted = [0]
        real_run = asyncio.Handle._run

        def counting_run(handle: Any) -> None:
            counted[0] += 1
            real_run(handle)

        reads, rounds = 500, 4
        started = anyio.Event()

        async def reader() -> None:
            await started.wait()
            for _ in range(rounds):
                assert await register.snapshot_values() == ["x"]

        try:
            async with anyio.create_task_group() as readers:
                for _ in range(reads):
                    readers.start_soon(reader)
                await anyio.wait_all_tasks_blocked()
                asyncio.Handle._run = counting_run  # type: ignore[method-assign]
                started.set()
        finally:
            asyncio.Handle._run = real_run  # type: ignore[method-assign]
        # Each reader also costs the harness two callbacks: its wake-up by `started`
        # and its task-done callback.
        per_read = (counted[0] - 2 * reads) / (rounds * reads)
        print(f"{per_read:.2f} callbacks per read")
        assert per_read < 1.25
        await node.aclose()


async def test_reads_waiting_on_a_round_end_when_the_node_stops() -> None:
    """A round's deadline is enforced by the runtime: when the runtime stops, its rounds
    must end too, or their readers (who hold no cancel scope) would wait forever."""
    node = replobj.Node(
        "n0",
        secret=SECRET,
        listen=f"127.0.0.1:{free_port()}",
        election_timeout=0.3,
        heartbeat_interval=0.05,
        call_timeout=60.0,
    )
    register = node.attach("reg", Register())
    async with anyio.create_task_group() as tasks:
        await tasks.start(node.serve)
        await node.wait_for_leader()
        runtime: RaftRuntime = node.runtime
        runtime._reads._attempt = 10.0  # a round's own deadline, far beyond the test's
        registered: list[int] = []

        def unanswered_read_index(request_id: int) -> Refusal | None:
            registered.append(request_id)  # the core never hears of it: no answer comes
            return None

        runtime.raft.read_index = unanswered_read_index  # type: ignore[method-assign]
        outcomes: list[str] = []

        async def reader() -> None:
            try:
                await register.snapshot_values()
            except errors.NodeStoppedError:
                outcomes.append("stopped")

        with anyio.fail_after(5.0):  # well before the round's own 10 s deadline (set above)
            async with anyio.create_task_group() as readers:
                for _ in range(3):
                    readers.start_soon(reader)
                while not registered:  # noqa: ASYNC110 - the round reaches the core's drain
                    await anyio.sleep(0.01)
                await node.aclose()
        assert outcomes == ["stopped"] * 3
        assert len(registered) == 1
