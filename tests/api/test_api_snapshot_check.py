"""Checking snapshot bytes in a fresh state, before anything live changes; the directory's id."""

from __future__ import annotations

from typing import Any

import pytest

import replobj
from replobj.directory import ClusterDirectory
from replobj.errors import ClassMismatchError, CorruptSnapshotError
from replobj.object_state import set_state
from replobj.statemachine import StateMachine

from .objects import KV, Counter, Log, OtherKV, call


@replobj.replicated
class Picky:
    """Refuses a state without its marker (as a class validating its state would)."""

    def __init__(self) -> None:
        self.marker = "ok"
        self.seen_states = 0

    def touch(self) -> None:
        """A command."""
        self.seen_states += 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("marker") != "ok":
            raise ValueError("no marker")
        self.seen_states += 1  # only a live instance has it: a fresh one raises here
        self.__dict__.update(state)


def _machine() -> tuple[StateMachine, Counter, KV]:
    machine = StateMachine()
    counter = machine.attach("counter", Counter())
    kv = machine.attach("kv", KV())
    log = Log()
    machine.apply(log.command(call("counter", "incr", 3, seq=1)))
    machine.apply(log.command(call("kv", "set", "x", 1, seq=2, cls=KV)))
    return machine, counter, kv


@pytest.mark.parametrize("data", [b"", b"\x00junk", b"\x01" + b"\x00" * 40])
def test_garbage_fails_the_check(data: bytes) -> None:
    machine, counter, _ = _machine()
    with pytest.raises(CorruptSnapshotError):
        machine.check_snapshot(data)
    assert counter.value == 3


def test_a_good_snapshot_passes_and_leaves_the_live_state_alone() -> None:
    source, _, _ = _machine()
    data = source.snapshot()
    target = StateMachine()
    counter = target.attach("counter", Counter())
    target.attach("kv", KV())
    target.check_snapshot(data)
    assert counter.value == 0
    assert target.applied_index == 0
    target.restore(data)
    assert counter.value == 3


def test_a_state_the_class_refuses_fails_the_check_on_a_fresh_instance() -> None:
    source = StateMachine()
    picky = source.attach("p", Picky())
    picky.marker = "broken"
    data = source.snapshot()
    target = StateMachine()
    live = target.attach("p", Picky())
    with pytest.raises(CorruptSnapshotError, match="'p'"):
        target.check_snapshot(data)
    assert live.marker == "ok"


def test_another_class_fails_the_check() -> None:
    source, _, _ = _machine()
    target = StateMachine()
    target.attach("counter", Counter())
    target.attach("kv", OtherKV())
    with pytest.raises(ClassMismatchError):
        target.check_snapshot(source.snapshot())


def test_the_first_cluster_id_applied_wins() -> None:
    directory = ClusterDirectory()
    assert directory.cluster_id == ""
    directory.set_cluster_id("first")
    directory.set_cluster_id("second")
    assert directory.cluster_id == "first"


def test_a_directory_state_from_before_cluster_ids_restores_with_none() -> None:
    directory = ClusterDirectory()
    directory.set_cluster_id("kept-only-if-in-the-state")
    old_state = {"addresses": {"a": "127.0.0.1:1"}, "removed": set()}
    set_state(directory, old_state)
    assert directory.cluster_id == ""
    assert directory.non_voters == set()
    assert directory.addresses == {"a": "127.0.0.1:1"}
