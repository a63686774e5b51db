"""Applying the command object a node encoded instead of decoding its payload.

The node passes its own :class:`Command` to :meth:`StateMachine.apply` only when
:func:`has_immutable_arguments` holds; applying it must then be indistinguishable from
applying the decoded payload, on this replica and on one that decodes.
"""

from __future__ import annotations

from typing import Any

import pytest

from replobj.command import (
    Command,
    encode_command,
    has_immutable_arguments,
    payload_timestamp,
    stamp_command,
)
from replobj.raft.types import Entry, EntryKind
from replobj.statemachine import StateMachine

from .objects import CLIENT_B, Counter, Recorder, call


class _Int(int):
    """An ``int`` subclass: it may carry mutable attributes, so it is not trusted."""


class _Hashable:
    """A hashable object whose attributes can change."""

    def __init__(self) -> None:
        self.items: list[int] = []


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        ((1, 2.5, 3j, True, None, "s", b"b"), {}),
        (((1, ("nested", b"x")), frozenset({1, "a"})), {"n": 3, "t": (None,)}),
    ],
)
def test_plain_immutable_arguments_are_recognised(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    assert has_immutable_arguments(call("counter", "incr", *args, seq=1, **kwargs))


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (([1],), {}),
        (((1, [2]),), {}),
        (({"k": 1},), {}),
        ((bytearray(b"x"),), {}),
        ((_Int(3),), {}),
        ((frozenset({_Hashable()}),), {}),
        ((), {"value": {1, 2}}),
        ((1,), {"value": (1, [2])}),
    ],
)
def test_anything_that_can_change_is_not(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    assert not has_immutable_arguments(call("kv", "set", *args, seq=1, **kwargs))


def _stamped_entry(cmd: Command, index: int, at: float, term: int = 1) -> Entry:
    return Entry(term, index, EntryKind.COMMAND, stamp_command(encode_command(cmd), at))


def _machine() -> tuple[StateMachine, Counter, Recorder]:
    machine = StateMachine()
    counter = machine.attach("counter", Counter())
    recorder = machine.attach("recorder", Recorder())
    return machine, counter, recorder


def test_a_local_command_applies_exactly_like_its_decoded_payload() -> None:
    local, local_counter, local_recorder = _machine()
    remote, remote_counter, remote_recorder = _machine()
    commands = [
        call("counter", "incr", 5, seq=1),
        call("counter", "stamp", seq=2, lowest_pending=1),
        call("recorder", "record", ("tag", 1), seq=3, lowest_pending=2, cls=Recorder),
        call("counter", "fail", "boom", seq=4, lowest_pending=4),
        call("counter", "incr", seq=1, client=CLIENT_B),
    ]
    for index, cmd in enumerate(commands, start=1):
        entry = _stamped_entry(cmd, index, 1000.0 + index, term=2)
        mine = local.apply(entry, cmd)
        theirs = remote.apply(entry)
        assert [
            (o.client_id, o.seq, o.value, repr(o.error), o.duplicate) for o in mine.commands
        ] == [(o.client_id, o.seq, o.value, repr(o.error), o.duplicate) for o in theirs.commands]
    assert local_counter.value == remote_counter.value == 1006
    assert local_recorder.applied == remote_recorder.applied == [(("tag", 1), 3)]
    assert local.sessions.now == remote.sessions.now == 1005.0
    assert local.snapshot() == remote.snapshot()


def test_a_local_command_sees_the_leader_timestamp_of_its_entry() -> None:
    machine, _, _ = _machine()
    cmd = call("counter", "stamp", seq=1)
    assert cmd.timestamp == 0.0
    outcome = machine.apply(_stamped_entry(cmd, 1, 1234.5, term=3), cmd)
    assert outcome.commands[0].result() == (1, 3, 1234.5)
    assert payload_timestamp(_stamped_entry(cmd, 1, 99.0).payload) == 99.0


def test_a_retry_is_recognised_whether_applied_locally_or_decoded() -> None:
    machine, counter, _ = _machine()
    cmd = call("counter", "incr", 2, seq=1)
    first = machine.apply(_stamped_entry(cmd, 1, 10.0))
    retry = machine.apply(_stamped_entry(cmd, 2, 11.0), cmd)
    assert first.commands[0].result() == retry.commands[0].result() == 2
    assert retry.commands[0].duplicate
    assert counter.value == 2
