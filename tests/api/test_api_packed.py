"""Several commands in one log entry: the packed payload format and applying it.

The runtime packs the calls a node submits together into one entry made of the callers'
own encoded pickles. Each command must still apply on its own: in order, with its own
session check, outcome and ``current_entry().position``, and a bad one must not fail
its neighbours.
"""

from __future__ import annotations

import random
import struct

import pytest

from replobj.command import (
    PACKED_TAG,
    Command,
    decode_commands,
    encode_command,
    pack_commands,
    payload_timestamp,
    stamp_command,
    unpack_commands,
)
from replobj.entry_context import EntryInfo
from replobj.errors import (
    ClassMismatchError,
    CorruptCommandError,
    StaleCommandError,
    UnknownMethodError,
)
from replobj.raft.types import Entry, EntryKind
from replobj.statemachine import ApplyOutcome, StateMachine

from .objects import CLIENT_A, CLIENT_B, KV, Counter, OtherKV, Recorder, call

_UNDECODABLE = b"\x80\x05cno_such_module\nThing\n."
"""A pickle naming a class this node does not have (as if another node ran other code)."""


def _packed_entry(commands: list[Command], index: int, at: float, term: int = 1) -> Entry:
    payload = stamp_command(pack_commands([encode_command(c) for c in commands]), at)
    return Entry(term, index, EntryKind.COMMAND, payload)


def _machine() -> tuple[StateMachine, Counter, Recorder]:
    machine = StateMachine()
    counter = machine.attach("counter", Counter())
    recorder = machine.attach("recorder", Recorder())
    machine.attach("kv", KV())
    return machine, counter, recorder


def _summary(outcome: ApplyOutcome) -> list[tuple[bytes, int, object, str, bool]]:
    return [(o.client_id, o.seq, o.value, repr(o.error), o.duplicate) for o in outcome.commands]


def test_a_packed_payload_carries_each_callers_own_pickle() -> None:
    commands = [call("counter", "incr", n, seq=n) for n in (1, 2, 3)]
    payloads = [encode_command(c) for c in commands]
    packed = pack_commands(payloads)
    assert packed[0] == PACKED_TAG
    assert len(packed) <= sum(map(len, payloads))
    stamped = stamp_command(packed, 1234.5)
    assert payload_timestamp(stamped) == 1234.5
    timestamp, pickles = unpack_commands(stamped)
    assert timestamp == 1234.5
    assert [bytes(p) for p in pickles] == [p[9:] for p in payloads]
    assert decode_commands(stamped) == tuple(c.with_timestamp(1234.5) for c in commands)


def test_only_single_command_payloads_are_packed() -> None:
    with pytest.raises(ValueError, match="at least one"):
        pack_commands([])
    packed = pack_commands([encode_command(call("counter", "incr", seq=1))] * 2)
    with pytest.raises(ValueError, match="single-command"):
        pack_commands([packed])


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x00",  # a length cut short
        struct.pack(">I", 0),  # an empty command
        struct.pack(">I", 50) + b"short",  # a length past the end
    ],
)
def test_a_malformed_packed_payload_is_corrupt(body: bytes) -> None:
    payload = bytes([PACKED_TAG]) + struct.pack(">d", 1.0) + body
    with pytest.raises(CorruptCommandError):
        unpack_commands(payload)
    with pytest.raises(CorruptCommandError):
        decode_commands(payload)
    machine, _, _ = _machine()
    outcome = machine.apply(Entry(1, 1, EntryKind.COMMAND, payload))
    assert outcome.commands == ()
    assert isinstance(outcome.error, CorruptCommandError)
    assert machine.applied_index == 1


def test_a_packed_entry_applies_like_one_entry_per_command() -> None:
    commands = [
        call("counter", "incr", 5, seq=1),
        call("recorder", "record", "a", seq=2, cls=Recorder),
        call("counter", "incr", seq=1, client=CLIENT_B),
        call("counter", "fail", "boom", seq=3, lowest_pending=1),
    ]
    packed, counter, recorder = _machine()
    outcome = packed.apply(_packed_entry(commands, 1, 50.0))
    assert [o.result() for o in outcome.commands[:3]] == [5, 1, 6]
    assert isinstance(outcome.commands[3].error, ValueError)
    assert counter.value == 1006
    assert recorder.applied == [("a", 1)]
    one_by_one, other_counter, _ = _machine()
    for index, cmd in enumerate(commands, start=1):
        single = Entry(1, index, EntryKind.COMMAND, stamp_command(encode_command(cmd), 50.0))
        assert _summary(one_by_one.apply(single))[0] == _summary(outcome)[index - 1]
    assert other_counter.value == counter.value
    assert one_by_one.sessions.now == packed.sessions.now == 50.0


def test_one_bad_command_does_not_fail_its_neighbours() -> None:
    machine, counter, _ = _machine()
    machine.attach("other", OtherKV())
    good = [call("counter", "incr", 1, seq=n, lowest_pending=1) for n in (1, 2, 3, 4, 5)]
    mismatched = call("other", "set", "k", 1, seq=6, cls=KV, lowest_pending=1)
    unknown = call("counter", "nope", seq=7, lowest_pending=1)
    payloads = [encode_command(c) for c in (good[0], mismatched, good[1], unknown, good[2])]
    undecodable = payloads[0][:9] + _UNDECODABLE
    payloads[2:2] = [undecodable]
    payloads.append(encode_command(good[3]))
    entry = Entry(1, 1, EntryKind.COMMAND, stamp_command(pack_commands(payloads), 7.0))
    outcome = machine.apply(entry)
    assert outcome.error is None
    results = outcome.commands
    assert len(results) == 7
    assert [results[i].result() for i in (0, 3, 5, 6)] == [1, 2, 3, 4]
    assert isinstance(results[1].error, ClassMismatchError)
    assert isinstance(results[2].error, CorruptCommandError)
    assert (results[2].client_id, results[2].seq) == (b"", 0)
    assert isinstance(results[4].error, UnknownMethodError)
    assert counter.value == 4


def test_retries_in_other_packed_entries_apply_once_and_get_the_first_outcome() -> None:
    machine, counter, _ = _machine()
    first = call("counter", "incr", 10, seq=1)
    second = call("counter", "incr", 1, seq=2)
    outcome = machine.apply(_packed_entry([first, second], 1, 1.0))
    assert [o.result() for o in outcome.commands] == [10, 11]
    # The caller got 1 but not 2; it retries 2 next to a new call, and 2 twice in one entry.
    third = call("counter", "incr", 100, seq=3, lowest_pending=2)
    retry = machine.apply(_packed_entry([third, second, second], 2, 2.0))
    assert [o.result() for o in retry.commands] == [111, 11, 11]
    assert [o.duplicate for o in retry.commands] == [False, True, True]
    # Acknowledging 2 and 3 forgets them: a stray copy of 1 or 2 is stale, not applied.
    later = call("counter", "incr", 1, seq=4, lowest_pending=4)
    stale = machine.apply(_packed_entry([later, first, second], 3, 3.0))
    assert stale.commands[0].result() == 112
    assert all(isinstance(o.error, StaleCommandError) for o in stale.commands[1:])
    assert counter.value == 112


def test_commands_of_one_entry_share_it_and_tell_their_positions_apart() -> None:
    commands = [call("counter", "stamp", seq=1)] + [
        call("counter", "draw", seq=n) for n in (2, 3, 4)
    ]
    outcomes = []
    for _replica in range(2):
        machine, _, _ = _machine()
        outcomes.append(machine.apply(_packed_entry(commands, 1, 99.0, term=4)))
    assert _summary(outcomes[0]) == _summary(outcomes[1])
    assert outcomes[0].commands[0].result() == (1, 4, 99.0)
    draws = [o.result() for o in outcomes[0].commands[1:]]
    assert len({tuple(d) for d in draws}) == 3
    assert EntryInfo(1, 4, 99.0, 2).random().random() == EntryInfo(1, 4, 99.0, 2).random().random()
    position_0 = EntryInfo(5, 2, 1.5).random().random()
    assert position_0 == random.Random("replobj-entry:2:5:1.5").random()
    assert position_0 != EntryInfo(5, 2, 1.5, 1).random().random()


def test_recorded_positions_identify_each_command() -> None:
    machine, _, recorder = _machine()
    tags = ["x", "y", "z"]
    commands = [call("recorder", "record", t, seq=i, cls=Recorder) for i, t in enumerate(tags, 1)]
    machine.apply(_packed_entry(commands, 1, 1.0))
    assert recorder.applied == [("x", 1), ("y", 1), ("z", 1)]


def test_local_commands_of_a_packed_entry_apply_like_decoded_ones() -> None:
    shared = [1, 2]
    commands = [
        call("counter", "incr", 3, seq=1),
        call("kv", "set", "list", shared, seq=2, cls=KV),
        call("counter", "stamp", seq=3),
        call("counter", "incr", seq=1, client=CLIENT_B),
    ]
    entry = _packed_entry(commands, 1, 42.0, term=2)
    local, _, _ = _machine()
    remote, _, _ = _machine()
    # The node passes its immutable-argument commands; the mutable one (None) is decoded.
    mine = local.apply(entry, (commands[0], None, commands[2], commands[3]))
    theirs = remote.apply(entry)
    assert _summary(mine) == _summary(theirs)
    assert mine.commands[2].result() == (1, 2, 42.0)
    assert local.objects["kv"].data["list"] is not shared
    assert local.snapshot() == remote.snapshot()
    assert local.sessions.clients() == {CLIENT_A, CLIENT_B}


def test_locals_that_do_not_match_the_entry_are_ignored() -> None:
    commands = [call("counter", "incr", 2, seq=1), call("counter", "incr", 3, seq=2)]
    machine, counter, _ = _machine()
    outcome = machine.apply(_packed_entry(commands, 1, 1.0), (commands[0],))
    assert [o.result() for o in outcome.commands] == [2, 5]
    assert counter.value == 5
