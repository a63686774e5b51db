"""Client sessions expire by leader time, identically on every replica."""

from __future__ import annotations

import time

import pytest

from replobj.sessions import SessionTable
from replobj.statemachine import StateMachine

from .objects import CLIENT_A, CLIENT_B, Counter, Log, call

TTL = 10.0


def _replica() -> tuple[StateMachine, Counter]:
    machine = StateMachine(session_ttl=TTL)
    return machine, machine.attach("counter", Counter())


def test_sessions_expire_by_entry_timestamps_identically() -> None:
    replicas = [_replica(), _replica()]
    log = Log()
    entries = [
        log.command(call("counter", "incr", seq=1, client=CLIENT_A, at=1000.0)),
        log.command(call("counter", "incr", seq=1, client=CLIENT_B, at=1005.0)),
        log.command(call("counter", "incr", seq=2, client=CLIENT_B, at=1010.0)),
        log.command(call("counter", "incr", seq=3, client=CLIENT_B, at=1010.5)),
        log.command(call("counter", "incr", seq=1, client=CLIENT_A, at=1011.0)),
    ]
    seen: list[list[frozenset[bytes]]] = []
    for machine, _ in replicas:
        history = []
        for entry in entries:
            machine.apply(entry)
            history.append(machine.sessions.clients())
        seen.append(history)
    assert seen[0] == seen[1]
    assert seen[0][2] == {CLIENT_A, CLIENT_B}
    assert seen[0][3] == {CLIENT_B}, "A was idle for 10.5 s > ttl at the 4th entry"
    assert seen[0][4] == {CLIENT_A, CLIENT_B}
    assert [c.value for _, c in replicas] == [5, 5], "A's seq 1 after expiry is a new session"
    assert replicas[0][0].snapshot() == replicas[1][0].snapshot()


def test_the_local_clock_plays_no_part() -> None:
    machine, counter = _replica()
    log = Log()
    long_ago = time.time() - 10 * 365 * 86400
    first = call("counter", "incr", seq=1, at=long_ago)
    machine.apply(log.command(first))
    replay = machine.apply(log.command(first.with_timestamp(long_ago + TTL)))
    assert replay.commands[0].duplicate
    assert counter.value == 1


def test_expiry_follows_the_largest_timestamp_seen() -> None:
    machine, _ = _replica()
    log = Log()
    machine.apply(log.command(call("counter", "incr", seq=1, client=CLIENT_A, at=100.0)))
    machine.apply(log.command(call("counter", "incr", seq=1, client=CLIENT_B, at=200.0)))
    assert machine.sessions.now == 200.0
    assert machine.sessions.clients() == {CLIENT_B}
    behind = call("counter", "incr", seq=2, client=CLIENT_B, at=150.0)
    machine.apply(log.command(behind))
    assert machine.sessions.now == 200.0


def test_acknowledged_outcomes_are_forgotten() -> None:
    machine, _ = _replica()
    log = Log()
    for seq in range(1, 6):
        machine.apply(log.command(call("counter", "incr", seq=seq, lowest_pending=1)))
    _, sessions = machine.sessions.export()
    assert [seq for seq, _ in sessions[0][3]] == [1, 2, 3, 4, 5]
    machine.apply(log.command(call("counter", "incr", seq=6, lowest_pending=4)))
    _, sessions = machine.sessions.export()
    assert [seq for seq, _ in sessions[0][3]] == [4, 5, 6]


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SessionTable(0)
