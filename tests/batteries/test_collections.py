"""The collection batteries as plain objects: their commands are pure, so no cluster."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from replobj import errors
from replobj.batteries import Counter, Dict, List, Queue, Register, Set
from replobj.replicated import spec_of


def test_every_battery_has_a_stable_name() -> None:
    for cls in (Counter, Register, Dict, Set, List, Queue):
        assert spec_of(cls).class_name == f"replobj.batteries.{cls.__name__}"


def test_reads_are_queries_and_writes_are_commands() -> None:
    spec = spec_of(Dict)
    assert spec.queries == {"get", "contains", "len", "keys", "items"}
    assert spec.commands == {"set", "delete", "pop", "setdefault", "clear"}
    assert spec_of(Queue).queries == {"peek", "len"}
    assert spec_of(List).queries == {"get", "slice", "len"}


def test_counter_incr_and_decr_return_the_new_value() -> None:
    counter = Counter(10)
    assert counter.incr() == 11
    assert counter.incr(4) == 15
    assert counter.decr(20) == -5
    assert counter.get() == -5


def test_register_compare_and_set_swaps_only_on_a_match() -> None:
    register: Register[str | None] = Register(None)
    assert register.compare_and_set("a", "b") is False
    assert register.get() is None
    assert register.compare_and_set(None, "a") is True
    register.set("c")
    assert register.compare_and_set("a", "x") is False
    assert register.get() == "c"


def test_dict_methods_follow_python_dict() -> None:
    d: Dict[str, int] = Dict()
    d.set("a", 1)
    assert d.setdefault("a", 5) == 1
    assert d.setdefault("b", 2) == 2
    assert d.get("a") == 1
    assert d.get("zz") is None
    assert d.get("zz", -1) == -1
    assert d.contains("b")
    assert d.keys() == ["a", "b"]
    assert d.items() == [("a", 1), ("b", 2)]
    assert d.len() == 2
    assert d.pop("a") == 1
    assert d.pop("a", None) is None
    with pytest.raises(KeyError):
        d.pop("a")
    assert d.delete("b") is True
    assert d.delete("b") is False
    assert d.len() == 0


def test_dict_reads_return_copies_of_its_listings() -> None:
    d: Dict[str, int] = Dict()
    d.set("a", 1)
    d.keys().append("b")
    d.items().clear()
    assert d.keys() == ["a"]


def test_set_pops_oldest_first_and_counts_new_elements() -> None:
    s: Set[str] = Set()
    assert s.add("b") is True
    assert s.add("b") is False
    assert s.update(["a", "c", "a", "b"]) == 2
    assert s.members() == ["b", "a", "c"]
    assert s.pop() == "b"
    assert s.discard("c") is True
    assert s.discard("c") is False
    assert s.contains("a")
    assert s.len() == 1
    assert s.clear() == 1
    with pytest.raises(KeyError):
        s.pop()


def test_set_order_is_the_same_in_processes_with_other_string_hashes() -> None:
    """A builtin set would iterate these in an order that depends on PYTHONHASHSEED."""
    script = (
        "from replobj.batteries import Set\n"
        "s = Set()\n"
        "s.update(f'element-{i}' for i in range(50))\n"
        "print(s.pop(), s.members()[:5])\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={"PYTHONHASHSEED": str(seed), "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in (1, 2, 3)
    }
    assert outputs == {
        "element-0 ['element-1', 'element-2', 'element-3', 'element-4', 'element-5']\n"
    }


def test_list_methods_follow_python_list() -> None:
    items: List[str] = List()
    assert items.append("a") == 1
    assert items.extend(["b", "c"]) == 3
    assert items.insert(0, "z") == 4
    assert items.slice() == ["z", "a", "b", "c"]
    assert items.slice(1, -1) == ["a", "b"]
    assert items.get(-1) == "c"
    assert items.pop() == "c"
    assert items.pop(0) == "z"
    assert items.len() == 2
    with pytest.raises(IndexError):
        items.get(5)
    assert items.clear() == 2
    with pytest.raises(IndexError):
        items.pop()


def test_queue_is_fifo_and_an_empty_pop_raises_a_replobj_error() -> None:
    queue: Queue[str | None] = Queue("jobs")
    assert queue.put("a") == 1
    assert queue.put(None) == 2
    assert queue.peek() == "a"
    assert queue.pop() == "a"
    assert queue.pop() is None
    assert queue.len() == 0
    with pytest.raises(errors.QueueEmptyError, match="jobs is empty") as raised:
        queue.pop()
    assert isinstance(raised.value, errors.BatteryError)
    assert isinstance(raised.value, LookupError)
    with pytest.raises(errors.QueueEmptyError):
        queue.peek()


def test_state_survives_a_snapshot_round_trip() -> None:
    d: Dict[str, int] = Dict()
    d.set("b", 2)
    d.set("a", 1)
    queue: Queue[int] = Queue()
    queue.put(3)
    queue.put(4)
    d2, queue2 = pickle.loads(pickle.dumps((d, queue), protocol=5))
    assert d2.items() == [("b", 2), ("a", 1)]
    assert queue2.pop() == 3
    assert queue2.len() == 1


def test_battery_errors_survive_pickling_with_their_details() -> None:
    """Outcomes are kept in the session table, which snapshots pickle."""
    held = pickle.loads(pickle.dumps(errors.LockHeldError("the lock", "alice", 12.5)))
    assert (held.owner, held.expires_at, str(held)) == (
        "alice",
        12.5,
        "the lock is held by 'alice' until 12.500 (leader time); retry later, or have the "
        "holder release it",
    )
    not_holder = pickle.loads(pickle.dumps(errors.NotHolderError("the lock", "bob", 7)))
    assert (not_holder.owner, not_holder.token) == ("bob", 7)
    full = pickle.loads(pickle.dumps(errors.NoPermitError("pool", 3, 9.0)))
    assert (full.permits, full.expires_at) == (3, 9.0)
    empty = pickle.loads(pickle.dumps(errors.QueueEmptyError("jobs")))
    assert str(empty) == "jobs is empty; put an item first, or call again later"
