"""Applying entries: results, captured exceptions, exactly-once, errors, current_entry."""

from __future__ import annotations

import pickle

import pytest

from replobj.command import CommandOutcome
from replobj.entry_context import EntryInfo, current_entry
from replobj.errors import (
    ApplyOrderError,
    AttachAfterStartError,
    AttachError,
    ClassMismatchError,
    CorruptCommandError,
    NoCurrentEntryError,
    NotAQueryError,
    NotReplicatedError,
    StaleCommandError,
    UnknownMethodError,
    UnknownObjectError,
)
from replobj.raft.types import Entry, EntryKind
from replobj.statemachine import StateMachine

from .objects import CLIENT_B, KV, Counter, Log, OtherKV, call


def _machine() -> tuple[StateMachine, Counter, KV]:
    machine = StateMachine()
    counter = machine.attach("counter", Counter())
    kv = machine.attach("kv", KV())
    return machine, counter, kv


def _only(outcome_commands: tuple[CommandOutcome, ...]) -> CommandOutcome:
    assert len(outcome_commands) == 1
    return outcome_commands[0]


def test_command_applies_and_returns_its_value() -> None:
    machine, counter, _ = _machine()
    log = Log()
    outcome = machine.apply(log.command(call("counter", "incr", 5, seq=1)))
    assert (outcome.index, outcome.term, outcome.kind) == (1, 1, EntryKind.COMMAND)
    assert _only(outcome.commands).result() == 5
    assert counter.value == 5
    assert machine.applied_index == 1
    assert machine.run_query("counter", "get") == 5


def test_noop_and_config_entries_only_advance() -> None:
    machine, counter, _ = _machine()
    assert machine.apply(Entry(1, 1, EntryKind.NOOP)).commands == ()
    assert machine.apply(Entry(2, 2, EntryKind.CONFIG, b"{}")).commands == ()
    assert (machine.applied_index, machine.applied_term, counter.value) == (2, 2, 0)


def test_entries_must_come_in_order() -> None:
    machine, _, _ = _machine()
    with pytest.raises(ApplyOrderError, match="entry 2 cannot follow applied index 0"):
        machine.apply(Entry(1, 2, EntryKind.NOOP))
    assert machine.applied_index == 0


def test_batch_entry_applies_every_command_in_order() -> None:
    machine, counter, _ = _machine()
    cmds = [call("counter", "incr", i, seq=i) for i in (1, 2, 3)]
    outcome = machine.apply(Log().command(*cmds))
    assert [o.result() for o in outcome.commands] == [1, 3, 6]
    assert counter.value == 6


def test_duplicate_client_seq_is_applied_once() -> None:
    machine, counter, _ = _machine()
    log = Log()
    cmd = call("counter", "incr", 1, seq=1)
    first = _only(machine.apply(log.command(cmd)).commands)
    retry = _only(machine.apply(log.command(cmd)).commands)
    assert (first.result(), first.duplicate) == (1, False)
    assert (retry.result(), retry.duplicate) == (1, True)
    assert counter.value == 1
    other_client = call("counter", "incr", 1, seq=1, client=CLIENT_B)
    assert _only(machine.apply(log.command(other_client)).commands).result() == 2


def test_concurrent_calls_of_one_client_may_apply_out_of_order() -> None:
    machine, counter, _ = _machine()
    log = Log()
    second = call("counter", "incr", 10, seq=2, lowest_pending=1)
    first = call("counter", "incr", 1, seq=1, lowest_pending=1)
    assert _only(machine.apply(log.command(second)).commands).result() == 10
    assert _only(machine.apply(log.command(first)).commands).result() == 11
    replay = _only(machine.apply(log.command(second)).commands)
    assert (replay.result(), replay.duplicate) == (10, True)
    assert counter.value == 11


def test_acknowledged_seq_is_stale_and_not_applied() -> None:
    machine, counter, _ = _machine()
    log = Log()
    machine.apply(log.command(call("counter", "incr", 1, seq=1)))
    machine.apply(log.command(call("counter", "incr", 1, seq=2)))
    stale = _only(machine.apply(log.command(call("counter", "incr", 1, seq=1))).commands)
    assert stale.duplicate
    with pytest.raises(StaleCommandError, match="already acknowledged"):
        stale.result()
    assert counter.value == 2


def test_exception_is_captured_kept_and_identical_on_two_replicas() -> None:
    machines = [_machine(), _machine()]
    log = Log()
    log_entries = [
        log.command(call("counter", "incr", 2, seq=1)),
        log.command(call("counter", "fail", "nope", seq=2)),
        log.command(call("counter", "fail", "nope", seq=2)),
        log.command(call("counter", "incr", 3, seq=3)),
    ]
    results = []
    for machine, _, _ in machines:
        outcomes = [_only(machine.apply(e).commands) for e in log_entries]
        results.append([(type(o.error), str(o.error), o.value, o.duplicate) for o in outcomes])
        with pytest.raises(ValueError, match="nope"):
            outcomes[1].result()
        assert outcomes[2].error is outcomes[1].error
    assert results[0] == results[1]
    assert machines[0][1].value == machines[1][1].value == 2 + 1000 + 3
    assert machines[0][0].snapshot() == machines[1][0].snapshot()


def test_unknown_object_is_reported_and_the_machine_keeps_going() -> None:
    machine, counter, _ = _machine()
    log = Log()
    outcome = _only(machine.apply(log.command(call("nope", "incr", seq=1))).commands)
    with pytest.raises(UnknownObjectError, match="attached: 'counter', 'kv'"):
        outcome.result()
    assert _only(machine.apply(log.command(call("counter", "incr", seq=2))).commands).value == 1
    assert counter.value == 1


def test_unknown_method_and_query_as_command_are_reported() -> None:
    machine, _, _ = _machine()
    log = Log()
    unknown = _only(machine.apply(log.command(call("counter", "explode", seq=1))).commands)
    with pytest.raises(UnknownMethodError, match="'explode' is not a command of"):
        unknown.result()
    as_query = _only(machine.apply(log.command(call("counter", "get", seq=2))).commands)
    with pytest.raises(UnknownMethodError, match="a query, not a command"):
        as_query.result()


def test_class_mismatch_is_reported() -> None:
    machine, _, kv = _machine()
    mismatched = call("kv", "set", "x", 1, seq=1, cls=OtherKV)
    outcome = _only(machine.apply(Log().command(mismatched)).commands)
    with pytest.raises(ClassMismatchError) as info:
        outcome.result()
    assert str(info.value) == (
        f"object 'kv' is a {KV.__module__}.KV here but the command came from tests.OtherKV: "
        "attach the same class under the same name on every node"
    )
    assert kv.data == {}


def test_corrupt_payload_is_reported_on_the_outcome() -> None:
    machine, _, _ = _machine()
    outcome = machine.apply(Log().raw(b"\x01garbage-garbage"))
    assert outcome.commands == ()
    assert isinstance(outcome.error, CorruptCommandError)
    assert machine.applied_index == 1


def test_current_entry_inside_and_outside_a_command() -> None:
    machine, _, _ = _machine()
    log = Log()
    machine.apply(log.noop(term=3))
    stamp = call("counter", "stamp", seq=1, at=1_700_000_000.5)
    value = _only(machine.apply(log.command(stamp, term=3)).commands).result()
    assert value == (2, 3, 1_700_000_000.5)
    with pytest.raises(NoCurrentEntryError, match="only available inside a command"):
        current_entry()
    assert EntryInfo(2, 3, 1.0).index == 2


def test_current_entry_timestamp_never_goes_back() -> None:
    machine, _, _ = _machine()
    log = Log()
    machine.apply(log.command(call("counter", "stamp", seq=1, at=100.0)))
    later_leader_behind = call("counter", "stamp", seq=2, at=90.0)
    assert _only(machine.apply(log.command(later_leader_behind)).commands).result()[2] == 100.0


def test_entry_random_numbers_are_the_same_on_every_replica_and_differ_per_entry() -> None:
    draws = []
    for _replica in range(2):
        machine, _, _ = _machine()
        log = Log()
        first = machine.apply(log.command(call("counter", "draw", seq=1, at=100.0)))
        second = machine.apply(log.command(call("counter", "draw", seq=2, at=100.0)))
        draws.append((_only(first.commands).result(), _only(second.commands).result()))
    assert draws[0] == draws[1]
    assert draws[0][0] != draws[0][1]
    assert EntryInfo(5, 2, 1.5).random().random() == EntryInfo(5, 2, 1.5).random().random()


def test_run_query_refuses_commands_and_unknown_methods() -> None:
    machine, _, _ = _machine()
    with pytest.raises(NotAQueryError, match="is a command"):
        machine.run_query("counter", "incr", (1,))
    with pytest.raises(UnknownMethodError, match="not a query"):
        machine.run_query("counter", "nope")
    with pytest.raises(UnknownObjectError):
        machine.run_query("nope", "get")
    assert machine.run_query("kv", "get", kwargs={"key": "x"}) is None


def test_attach_validates_and_closes_at_start() -> None:
    machine = StateMachine()
    counter = Counter()
    assert machine.attach("c", counter) is counter
    with pytest.raises(AttachError, match="already attached as 'c'"):
        machine.attach("c", Counter())
    with pytest.raises(AttachError, match="non-empty str"):
        machine.attach("", Counter())
    with pytest.raises(NotReplicatedError):
        machine.attach("x", object())
    machine.freeze()
    with pytest.raises(AttachAfterStartError, match="attach every object before"):
        machine.attach("d", Counter())
    assert set(machine.objects) == {"c"}


def test_first_apply_closes_attaching() -> None:
    machine = StateMachine()
    machine.apply(Entry(1, 1, EntryKind.NOOP))
    assert machine.frozen
    with pytest.raises(AttachAfterStartError):
        machine.attach("c", Counter())


@pytest.mark.parametrize(
    "error_type",
    [
        ClassMismatchError,
        CorruptCommandError,
        StaleCommandError,
        UnknownMethodError,
        UnknownObjectError,
        NotAQueryError,
        NoCurrentEntryError,
    ],
)
def test_outcome_errors_survive_pickling(error_type: type[Exception]) -> None:
    """Kept outcomes travel in snapshots, so the errors they hold must unpickle."""
    copy = pickle.loads(pickle.dumps(error_type("what happened; what to do")))
    assert type(copy) is error_type
    assert str(copy) == "what happened; what to do"
