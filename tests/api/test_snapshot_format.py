"""Snapshot pickles that let other threads run: same objects back, old snapshots still read."""

from __future__ import annotations

import collections
import pickle
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cloudpickle  # type: ignore[import-untyped]
import pytest

import replobj
from replobj import pickling
from replobj.errors import SnapshotAbandonedError
from replobj.object_state import dump_state
from replobj.snapshot_format import PLAIN_SNAPSHOT_TAG, SNAPSHOT_TAG
from replobj.statemachine import StateMachine

from .objects import KV, Counter, Log, call


@dataclass
class Node:
    """A dataclass that may point at itself."""

    value: object
    next: object = None


def _samples() -> Iterator[object]:
    looped: list[object] = [1, 2]
    looped.append(looped)
    mapping: dict[str, object] = {"a": 1}
    mapping["self"] = mapping
    shared = [1, 2, 3]
    inner: list[object] = []
    recursive_tuple = (inner, 5)
    inner.append(recursive_tuple)
    node = Node(None)
    node.value = node
    yield looped
    yield mapping
    yield [shared, shared, (shared,)]
    yield recursive_tuple
    yield node
    yield {1, 2, frozenset({3})}
    yield collections.OrderedDict(a=1, b=[2])
    yield {f"k{i}": (i, str(i), float(i), b"x" * (i % 5), None, True) for i in range(3000)}
    yield [bytearray(b"abc"), 10**40, "x", None, (), [[[]] * 3] * 3]


def _plain_round_trip(obj: object) -> bytes:
    return pickle.dumps(pickle.loads(pickle.dumps(obj, protocol=5)), protocol=5)


@pytest.mark.parametrize("every", [1, 2, 3, 4096])
def test_objects_come_back_as_a_plain_pickle_brings_them_back(
    monkeypatch: pytest.MonkeyPatch, every: int
) -> None:
    """Equal values and the same sharing (cycles, shared lists, recursive tuples), even
    when every object is named as a persistent id."""
    monkeypatch.setattr(pickling, "YIELD_EVERY", every)
    for obj in _samples():
        for pickler in (None, lambda file: cloudpickle.Pickler(file, protocol=5)):
            if pickler is None:
                data = pickling.dumps(obj, prefix=b"\x02")
            else:
                data = pickling.dumps(obj, prefix=b"\x02", pickler=pickler)
            back = pickling.loads(data, offset=1)
            assert pickle.dumps(back, protocol=5) == _plain_round_trip(obj)
    looped: list[object] = [1]
    looped.append(looped)
    back_loop = pickling.loads(pickling.dumps(looped))
    assert back_loop[1] is back_loop


def test_a_large_pickle_holds_persistent_ids_that_plain_pickle_refuses() -> None:
    state = {f"key-{i}": i for i in range(3 * pickling.YIELD_EVERY)}
    data = pickling.dumps(state)
    with pytest.raises(pickle.UnpicklingError, match="persistent"):
        pickle.loads(data)
    assert pickling.loads(data) == state
    assert pickling.loads(pickle.dumps(state, protocol=5)) == state  # plain ones read too


def test_a_set_stop_flag_stops_pickling_and_unpickling() -> None:
    state = {f"key-{i}": i for i in range(3 * pickling.YIELD_EVERY)}
    stop = threading.Event()
    data = pickling.dumps(state, stop)
    stop.set()
    with pytest.raises(SnapshotAbandonedError):
        pickling.loads(data, stop)
    with pytest.raises(SnapshotAbandonedError):
        pickling.dumps(state, stop)
    kv = KV()
    kv.data = state
    with pytest.raises(SnapshotAbandonedError):  # not taken for an unpicklable state
        dump_state("kv", kv, stop)


def _machine() -> StateMachine:
    machine = StateMachine()
    machine.attach("counter", Counter())
    machine.attach("kv", KV())
    log = Log()
    machine.apply(log.command(call("counter", "incr", 3, seq=1)))
    machine.apply(log.command(call("kv", "set", "x", [1, 2], seq=2, cls=KV)))
    return machine


def test_a_snapshot_in_the_plain_format_of_earlier_versions_is_still_restored() -> None:
    source = _machine()
    data = source.snapshot()
    assert data[0] == SNAPSHOT_TAG
    doc = pickling.loads(data, offset=1)
    doc["objects"] = {
        name: (cls, pickle.dumps(pickling.loads(blob), protocol=5))
        for name, (cls, blob) in doc["objects"].items()
    }
    old = bytes([PLAIN_SNAPSHOT_TAG]) + pickle.dumps(doc, protocol=5)
    target = StateMachine()
    counter = target.attach("counter", Counter())
    kv = target.attach("kv", KV())
    target.restore_checked(target.check_snapshot(old))
    assert (counter.value, kv.data, target.applied_index) == (3, {"x": [1, 2]}, 2)
    assert target.snapshot() == data


@replobj.replicated
class Consuming:
    """Its ``__setstate__`` empties the state it is given (a class may do that)."""

    def __init__(self) -> None:
        self.items: list[int] = []

    def add(self, value: int) -> None:
        """A command."""
        self.items.append(value)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.items = list(state.pop("items"))


def test_a_checked_snapshot_restores_what_it_holds_after_a_setstate_emptied_its_check() -> None:
    source = StateMachine()
    source.attach("c", Consuming()).items = [1, 2, 3]
    target = StateMachine()
    live = target.attach("c", Consuming())
    checked = target.check_snapshot(source.snapshot())
    assert live.items == []
    target.restore_checked(checked)
    assert live.items == [1, 2, 3]


def test_restore_checked_refuses_anything_else() -> None:
    with pytest.raises(TypeError, match="CheckedSnapshot"):
        StateMachine().restore_checked(b"\x02")
