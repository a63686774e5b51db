"""A deliberately broken read path is caught, and so is each kind of broken replica."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from replobj.demo import STORE, ProcessCluster
from replobj.testing import HistoryRecorder, KeyValueModel, Outcome, check_history
from replobj.testing.nemesis.workload import (
    LocalRead,
    local_read_problems,
    replica_problems,
    without_unread_unknown_puts,
)

MEMBER_PROGRAM = [sys.executable, "-m", "replobj.demo", "member"]


@pytest.mark.anyio
async def test_a_linearizable_read_served_from_a_lagging_replica_is_flagged(
    tmp_path: Path, anyio_backend: str
) -> None:
    print(f"member processes on {anyio_backend}, data and logs under {tmp_path}")
    cluster = ProcessCluster(tmp_path, MEMBER_PROGRAM, backend=anyio_backend)
    recorder = HistoryRecorder()
    try:
        async with cluster:
            await cluster.start(["n1", "n2", "n3"])
            leader = await cluster.wait_for_leader()
            lagging = min(node for node in cluster.members if node != leader)
            via = cluster.members[leader]
            with recorder.call("writer", "put", ("k", "old")) as call:
                call.returned(await via.call(STORE, "put", "k", "old", timeout=10.0))
            await cluster.wait_caught_up([lagging])
            await via.request("remove_member", node=lagging, timeout=10.0)
            with recorder.call("writer", "put", ("k", "new")) as call:
                call.returned(await via.call(STORE, "put", "k", "new", timeout=10.0))
            with recorder.call("broken reader", "get", "k") as call:
                call.returned(await cluster.members[lagging].local(STORE, "get", "k"))
            with recorder.call("reader", "get", "k") as call:
                call.returned(await via.read(STORE, "get", "k", timeout=10.0))
    finally:
        print(cluster.describe())
    history = recorder.history()
    assert [op.output for op in history if op.name == "get"] == ["old", "new"]
    verdict = check_history(history, KeyValueModel())
    print(verdict.explain())
    assert verdict.outcome is Outcome.NOT_LINEARIZABLE
    assert "broken reader" in verdict.explain()


def test_dropping_unread_unknown_puts_keeps_read_ones_and_the_verdict() -> None:
    clock = iter(range(100))
    recorder = HistoryRecorder(clock=lambda: next(clock))
    lost = recorder.invoke(1, "put", ("k", "never read"))
    seen = recorder.invoke(2, "put", ("k", "read"))
    recorder.unknown(lost)
    recorder.unknown(seen)
    recorder.ok(recorder.invoke(3, "get", "k"), "read")
    history = recorder.history()
    reduced = without_unread_unknown_puts(history)
    assert [op.input for op in reduced] == [("k", "read"), "k"]
    assert check_history(history, KeyValueModel()).ok
    assert check_history(reduced, KeyValueModel()).ok


def test_a_local_read_that_goes_back_or_strays_from_the_final_journal_is_flagged() -> None:
    final = ("a", "b", "c")
    monotonic = [LocalRead("n1", 7, ("a", "b"), 0, 1), LocalRead("n1", 7, ("a", "b"), 2, 3)]
    assert local_read_problems(monotonic, final) == []
    went_back = [LocalRead("n1", 7, ("a", "b"), 0, 1), LocalRead("n1", 7, ("a",), 2, 3)]
    assert any("went back" in p for p in local_read_problems(went_back, final))
    restarted = [LocalRead("n1", 7, ("a", "b"), 0, 1), LocalRead("n1", 8, ("a",), 2, 3)]
    assert any("went back" in p for p in local_read_problems(restarted, final))
    other_node = [LocalRead("n1", 7, ("a", "b"), 0, 1), LocalRead("n2", 8, ("a",), 2, 3)]
    assert local_read_problems(other_node, final) == []
    overlapping = [LocalRead("n1", 7, ("a", "b"), 0, 5), LocalRead("n1", 7, ("a",), 2, 3)]
    assert local_read_problems(overlapping, final) == []
    strayed = [LocalRead("n2", 9, ("a", "x"), 0, 1)]
    assert any("not a prefix" in p for p in local_read_problems(strayed, final))


def test_lost_duplicated_invented_or_diverging_replica_state_is_flagged() -> None:
    journals = {"n1": ["a", "b"], "n2": ["a", "b"]}
    items = {"n1": {"k": 1}, "n2": {"k": 1}}
    assert replica_problems(journals, items, {"a", "b"}, {"a", "b", "c"}) == []
    lost = replica_problems(journals, items, {"a", "b", "c"}, {"a", "b", "c"})
    assert any("lost" in p for p in lost)
    twice = replica_problems({"n1": ["a", "a"]}, {"n1": {}}, {"a"}, {"a"})
    assert any("twice" in p for p in twice)
    invented = replica_problems({"n1": ["z"]}, {"n1": {}}, set(), set())
    assert any("nobody sent" in p for p in invented)
    refused = replica_problems(journals, items, {"a"}, {"a", "b"}, {"b": "timed out"})
    assert any("refused as not applied was applied (timed out)" in p for p in refused)
    diverged = replica_problems(
        {"n1": ["a"], "n2": ["a"]}, {"n1": {"k": 1}, "n2": {}}, set(), {"a"}
    )
    assert any("map differs" in p for p in diverged)
