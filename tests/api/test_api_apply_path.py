"""The per-command apply path builds as little as it can (issue 11).

A replica applies a packed entry's commands from their pickled fields, without building
a :class:`~replobj.command.Command` per command (the node that encoded a command
validated it); what the session table relies on is still checked, so a bad command
fails alone. Call tickets are their own wake-up flag, awaited without a coroutine frame
on asyncio.
"""

from __future__ import annotations

import asyncio
import contextvars
import pickle
import socket
import struct
from typing import Any

import anyio
import pytest

import replobj
import replobj.node_calls
import replobj.tickets
import replobj.waiting
from replobj.command import (
    PACKED_TAG,
    Command,
    CommandOutcome,
    encode_command,
    pack_commands,
    stamp_command,
)
from replobj.entry_context import current_entry
from replobj.errors import CorruptCommandError, NoCurrentEntryError, StaleCommandError
from replobj.raft.types import Entry, EntryKind
from replobj.replicated import replicated
from replobj.statemachine import StateMachine
from replobj.tickets import CallTicket

from .objects import CLIENT_A, CLIENT_B, Counter, Log, call

_LENGTH = struct.Struct(">I")


@replicated(name="tests.apply_path.ContextCopier")
class ContextCopier:
    """Keeps a copy of the context each command ran in (as a scheduled callback would)."""

    def __init__(self) -> None:
        self.copies: list[contextvars.Context] = []

    def copy(self) -> tuple[int, int]:
        self.copies.append(contextvars.copy_context())
        info = current_entry()
        return info.index, info.position


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The async test runs on both backends."""
    return str(request.param)


def _packed_log(log: Log, commands: list[Command], at: float) -> Entry:
    return log.raw(stamp_command(pack_commands([encode_command(c) for c in commands]), at))


def _machine(ttl: float = 3600.0) -> tuple[StateMachine, Counter]:
    machine = StateMachine(session_ttl=ttl)
    return machine, machine.attach("counter", Counter())


def _packed(pickles: list[bytes], at: float, index: int = 1) -> Entry:
    body = b"".join(_LENGTH.pack(len(p)) + p for p in pickles)
    payload = bytes([PACKED_TAG]) + struct.pack(">d", at) + body
    return Entry(1, index, EntryKind.COMMAND, payload)


def test_a_replica_applies_a_packed_entry_without_building_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    commands = [call("counter", "incr", n, seq=n, lowest_pending=1) for n in (1, 2, 3)]
    payload = stamp_command(pack_commands([encode_command(c) for c in commands]), 5.0)
    built: list[Command] = []
    original = Command.__post_init__

    def counting(self: Command) -> None:
        built.append(self)
        original(self)

    monkeypatch.setattr(Command, "__post_init__", counting)
    machine, counter = _machine()
    outcome = machine.apply(Entry(1, 1, EntryKind.COMMAND, payload))
    assert built == []
    assert [o.result() for o in outcome.commands] == [1, 3, 6]
    assert [(o.client_id, o.seq) for o in outcome.commands] == [(CLIENT_A, n) for n in (1, 2, 3)]
    assert counter.value == 6


@pytest.mark.parametrize(
    "fields",
    [
        (b"short", 1, 1, "counter", "tests.api.objects.Counter", "incr", (), {}),
        (CLIENT_B, 0, 0, "counter", "tests.api.objects.Counter", "incr", (), {}),
        (CLIENT_B, "1", 1, "counter", "tests.api.objects.Counter", "incr", (), {}),
        (CLIENT_B, 2, 3, "counter", "tests.api.objects.Counter", "incr", (), {}),
        (CLIENT_B, 2, 1.0, "counter", "tests.api.objects.Counter", "incr", (), {}),
        (CLIENT_B, 1, 1, "counter", "tests.api.objects.Counter", "incr", ()),
        [CLIENT_B, 1, 1, "counter", "tests.api.objects.Counter", "incr", (), {}],
        42,
    ],
)
def test_a_packed_command_the_sessions_cannot_take_fails_alone(fields: Any) -> None:
    good = [call("counter", "incr", seq=n, lowest_pending=1) for n in (1, 2)]
    pickles = [encode_command(c)[9:] for c in good]
    pickles.insert(1, pickle.dumps(fields, protocol=5))
    machine, counter = _machine()
    outcome = machine.apply(_packed(pickles, 1.0))
    assert outcome.error is None
    first, bad, last = outcome.commands
    assert (first.result(), last.result()) == (1, 2)
    assert isinstance(bad.error, CorruptCommandError)
    assert (bad.client_id, bad.seq) == (b"", 0)
    assert machine.sessions.clients() == {CLIENT_A}
    assert counter.value == 2


def test_a_packed_entry_keeps_exactly_once_and_stale_calls() -> None:
    machine, counter = _machine()
    log = Log()
    first = [call("counter", "incr", seq=n, lowest_pending=1) for n in (1, 2, 3)]
    machine.apply(_packed_log(log, first, 1.0))
    again = [
        call("counter", "incr", seq=2, lowest_pending=2),  # a retry: its kept outcome
        call("counter", "incr", seq=1, lowest_pending=1),  # acknowledged: stale
        call("counter", "incr", seq=4, lowest_pending=4),  # new; forgets 2 and 3
        call("counter", "incr", seq=3, lowest_pending=1),  # acknowledged now: stale
    ]
    retry, stale, new, late = machine.apply(_packed_log(log, again, 2.0)).commands
    assert (retry.result(), retry.duplicate) == (2, True)
    assert isinstance(stale.error, StaleCommandError)
    assert stale.duplicate
    assert "counter.incr" in str(stale.error)
    assert new.result() == 4
    assert isinstance(late.error, StaleCommandError)
    assert counter.value == 4


def test_sessions_touched_at_one_leader_time_expire_in_activity_order() -> None:
    ttl = 10.0
    machine, _ = _machine(ttl)
    log = Log()
    steps: list[tuple[bytes, int, float]] = [
        (CLIENT_A, 1, 1000.0),
        (CLIENT_B, 1, 1000.0),
        (CLIENT_A, 2, 1000.0),  # touched again at the same leader time
        (CLIENT_B, 2, 1005.0),
    ]
    for client, seq, at in steps:
        machine.apply(log.command(call("counter", "incr", seq=seq, client=client, at=at)))
    machine.apply(log.command(call("counter", "incr", seq=3, client=CLIENT_B, at=1010.5)))
    assert machine.sessions.clients() == {CLIENT_B}, "A idle since 1000 > ttl"
    third = b"C" * 16
    machine.apply(log.command(call("counter", "incr", seq=1, client=third, at=1020.6)))
    assert machine.sessions.clients() == {third}, "B idle since 1010.5 > ttl"


def test_command_outcomes_compare_by_value_and_copy_as_duplicates() -> None:
    error = KeyError("k")
    outcome = CommandOutcome(CLIENT_A, 3, error=error)
    assert outcome == CommandOutcome(CLIENT_A, 3, None, error, False)
    assert outcome != CommandOutcome(CLIENT_A, 3, error=error, duplicate=True)
    assert outcome.as_duplicate() == CommandOutcome(CLIENT_A, 3, error=error, duplicate=True)
    assert not outcome.duplicate
    assert "seq=3" in repr(outcome)
    with pytest.raises(TypeError):
        hash(outcome)


@pytest.mark.anyio
@pytest.mark.parametrize("loop_known", [False, True])
async def test_a_call_ticket_is_its_own_flag(anyio_backend_name: str, loop_known: bool) -> None:
    on_asyncio = anyio_backend_name == "asyncio"
    loop = asyncio.get_running_loop() if on_asyncio and loop_known else None
    ticket = CallTicket(b"payload", deadline=0.0, loop=loop)
    woken: list[object] = []

    async def waiter() -> None:
        awaitable = ticket.waiter()
        if on_asyncio:
            assert isinstance(awaitable, asyncio.Future), "awaited without a coroutine frame"
        await awaitable
        woken.append(ticket.result)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(waiter)
        tasks.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert not ticket.done
        ticket.resolve(True, "outcome")
        ticket.fail(RuntimeError("too late"))
    assert woken == ["outcome", "outcome"]
    assert (ticket.done, ticket.applied, ticket.error) == (True, True, None)
    await ticket.waiter()


def test_a_context_copied_during_a_command_has_no_current_entry_afterwards() -> None:
    machine, _ = _machine()
    recorder = machine.attach("copier", ContextCopier())
    log = Log()
    commands = [call("copier", "copy", seq=n, cls=ContextCopier, lowest_pending=1) for n in (1, 2)]
    outcome = machine.apply(_packed_log(log, commands, 3.0))
    assert [o.result() for o in outcome.commands] == [(1, 0), (1, 1)]
    for copied in recorder.copies:
        with pytest.raises(NoCurrentEntryError):
            copied.run(current_entry)
    with pytest.raises(NoCurrentEntryError):
        current_entry()


class _CallerCounts:
    """What the caller's own task creates: futures, call tickets, waits for a role change.

    The node's tasks (its first leader proposing the cluster id, say) may wait on futures of
    their own meanwhile, and on a loaded machine a call may be retried (a new ticket, and a
    wait for a role change after a refusal): each of those costs a future of its own.
    """

    task: asyncio.Task[object] | None = None
    futures = 0
    tickets = 0
    role_waits = 0

    @classmethod
    def mine(cls) -> bool:
        """Whether the running code is the caller's (on trio, with no task set: always)."""
        return cls.task is None or asyncio.current_task() is cls.task


class _CountedFuture(asyncio.Future[None]):
    def __init__(self, *, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        if _CallerCounts.mine():
            _CallerCounts.futures += 1


class _CountedTicket(replobj.tickets.CallTicket):
    __slots__ = ()

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        if _CallerCounts.mine():
            _CallerCounts.tickets += 1


def _count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replobj.waiting, "Future", _CountedFuture)
    monkeypatch.setattr(replobj.tickets, "CallTicket", _CountedTicket)
    wait_role_change = replobj.node_calls.NodeCalls._wait_role_change

    async def counted_wait(self: replobj.node_calls.NodeCalls) -> None:
        _CallerCounts.role_waits += 1
        await wait_role_change(self)

    monkeypatch.setattr(replobj.node_calls.NodeCalls, "_wait_role_change", counted_wait)
    monkeypatch.setattr(_CallerCounts, "task", asyncio.current_task())


def _counts() -> tuple[int, int, int]:
    return _CallerCounts.futures, _CallerCounts.tickets, _CallerCounts.role_waits


@pytest.mark.anyio
async def test_a_call_awaits_one_future_and_a_batch_one_per_entry(
    anyio_backend_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_CallerCounts, "futures", 0)
    if anyio_backend_name == "asyncio":
        _count(monkeypatch)
    else:
        monkeypatch.setattr(replobj.waiting, "Future", _CountedFuture)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    node = replobj.Node("n0", secret=replobj.new_secret(), listen=f"127.0.0.1:{port}")
    counter = node.attach("counter", Counter())
    async with anyio.create_task_group() as tasks:
        await tasks.start(node.serve)
        await node.wait_for_leader()
        await counter.incr()
        before = _counts()
        for _ in range(20):
            await counter.incr()
        after = _counts()
        sequential = [b - a for a, b in zip(before, after, strict=True)]
        before = after
        assert await counter.incr.many(range(100)) == [21 + sum(range(n + 1)) for n in range(100)]
        batch = [b - a for a, b in zip(before, _counts(), strict=True)]
        await node.aclose()
        tasks.cancel_scope.cancel()
    if anyio_backend_name == "asyncio":
        futures, tickets, role_waits = sequential
        assert tickets >= 20, sequential
        assert futures == tickets + role_waits, (
            f"one bare future per sequential call (and per retry): {sequential}"
        )
        futures, tickets, role_waits = batch
        assert tickets >= 100, batch
        retries = tickets - 100 + role_waits
        assert 1 <= futures <= 2 + retries, (
            f"the commands of one entry wake their caller once (plus retries): {batch}"
        )
    else:
        assert _CallerCounts.futures == 0, "trio waits on anyio events"
