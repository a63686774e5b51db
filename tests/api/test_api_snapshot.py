"""Snapshots: round trips into the same instances, custom state, bad and mismatched data."""

from __future__ import annotations

import re
import threading

import pytest

from replobj.errors import (
    ClassMismatchError,
    CorruptSnapshotError,
    StaleCommandError,
    UnknownObjectError,
    UnpicklableStateError,
)
from replobj.statemachine import StateMachine

from .objects import KV, Account, Counter, Log, OtherKV, Slotted, call


def _attach_all(machine: StateMachine) -> tuple[Counter, KV, Account, Slotted]:
    return (
        machine.attach("counter", Counter()),
        machine.attach("kv", KV()),
        machine.attach("account", Account()),
        machine.attach("slotted", Slotted()),
    )


def _busy_machine() -> tuple[StateMachine, Log]:
    machine = StateMachine()
    _, _, account, _ = _attach_all(machine)
    log = Log()
    machine.apply(log.noop())
    machine.apply(log.command(call("counter", "incr", 7, seq=1)))
    machine.apply(log.command(call("kv", "set", "x", {"nested": [1, 2]}, seq=2, cls=KV)))
    machine.apply(log.command(call("account", "deposit", 50, seq=3, cls=Account)))
    machine.apply(log.command(call("slotted", "add", 4, seq=4, cls=Slotted), term=2))
    account.cache["stale"] = 99
    return machine, log


def test_round_trip_restores_state_sessions_and_position_in_place() -> None:
    source, log = _busy_machine()
    data = source.snapshot()
    target = StateMachine()
    counter, kv, _, slotted = _attach_all(target)
    target.restore(data)
    assert target.objects["counter"] is counter
    assert (counter.value, slotted.total, slotted.secret()) == (7, 4, 4)
    assert kv.data == {"x": {"nested": [1, 2]}}
    assert (target.applied_index, target.applied_term) == (5, 2)
    assert target.snapshot() == data
    retry = target.apply(log.command(call("slotted", "add", 4, seq=4, cls=Slotted)))
    assert (retry.commands[0].result(), retry.commands[0].duplicate) == (4, True)
    assert slotted.total == 4
    stale = target.apply(log.command(call("counter", "incr", 7, seq=1)))
    with pytest.raises(StaleCommandError):
        stale.commands[0].result()


def test_getstate_and_setstate_are_honoured() -> None:
    source, _ = _busy_machine()
    target = StateMachine()
    _, _, account, _ = _attach_all(target)
    account.cache["local"] = 1
    target.restore(source.snapshot())
    assert (account.balance, account.history) == (50, [50])
    assert account.cache == {"restored": 1}


def test_restore_rewinds_the_same_instances() -> None:
    machine, log = _busy_machine()
    data = machine.snapshot()
    counter = machine.objects["counter"]
    slotted = machine.objects["slotted"]
    machine.apply(log.command(call("counter", "incr", 100, seq=5)))
    machine.apply(log.command(call("kv", "set", "y", 2, seq=6, cls=KV)))
    counter.extra = "added later"
    machine.restore(data)
    assert counter is machine.objects["counter"]
    assert counter.value == 7
    assert not hasattr(counter, "extra")
    assert machine.objects["kv"].data == {"x": {"nested": [1, 2]}}
    assert slotted.total == 4
    assert machine.applied_index == 5


def test_unset_slot_is_cleared_on_restore() -> None:
    source = StateMachine()
    source.attach("slotted", Slotted())
    target = StateMachine()
    slotted = target.attach("slotted", Slotted())
    slotted.add(3)
    target.restore(source.snapshot())
    assert (slotted.total, slotted.secret()) == (0, None)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x02whatever", b"\x01not a pickle", b"\x01" + b"\x80\x05N."],
)
def test_garbage_is_rejected_and_nothing_changes(data: bytes) -> None:
    machine, _ = _busy_machine()
    before = machine.snapshot()
    with pytest.raises(CorruptSnapshotError):
        machine.restore(data)
    assert machine.snapshot() == before


def test_truncated_snapshot_is_rejected() -> None:
    machine, _ = _busy_machine()
    data = machine.snapshot()
    with pytest.raises(CorruptSnapshotError, match="cannot decode"):
        machine.restore(data[: len(data) // 2])


def test_snapshot_with_other_objects_is_rejected() -> None:
    source, _ = _busy_machine()
    target = StateMachine()
    target.attach("counter", Counter())
    with pytest.raises(UnknownObjectError, match="'account' is only in the snapshot"):
        target.restore(source.snapshot())


def test_snapshot_with_another_class_is_rejected() -> None:
    source = StateMachine()
    source.attach("kv", KV())
    target = StateMachine()
    other = target.attach("kv", OtherKV())
    other.set("keep", 1)
    with pytest.raises(
        ClassMismatchError, match=rf"snapshot holds a {re.escape(KV.__module__)}\.KV"
    ):
        target.restore(source.snapshot())
    assert other.data == {"keep": 1}


def test_unpicklable_state_names_the_object() -> None:
    machine = StateMachine()
    kv = machine.attach("kv", KV())
    kv.set("lock", threading.Lock())
    with pytest.raises(UnpicklableStateError, match="cannot snapshot object 'kv'"):
        machine.snapshot()


def test_state_needing_cloudpickle_round_trips() -> None:
    source = StateMachine()
    source.attach("kv", KV()).set("fn", lambda x: x * 3)
    target = StateMachine()
    kv = target.attach("kv", KV())
    target.restore(source.snapshot())
    assert kv.data["fn"](2) == 6


def test_kept_outcome_that_does_not_unpickle_is_replaced() -> None:
    source = StateMachine()
    source.attach("counter", Counter())
    log = Log()
    failing = call("counter", "bad_result", seq=1)
    original = source.apply(log.command(failing)).commands[0]
    assert str(original.error) == "1 and 2"
    target = StateMachine()
    target.attach("counter", Counter())
    target.restore(source.snapshot())
    retry = target.apply(log.command(failing)).commands[0]
    assert retry.duplicate
    with pytest.raises(UnpicklableStateError, match="could not be kept in a snapshot"):
        retry.result()
