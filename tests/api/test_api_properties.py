"""Property tests: exactly-once under retries and reordering, and snapshot transparency."""

from __future__ import annotations

from collections import Counter as Tally

from hypothesis import given, settings
from hypothesis import strategies as st

from replobj.raft.types import Entry
from replobj.statemachine import StateMachine

from .objects import CLIENT_A, CLIENT_B, Log, Recorder, call

TTL = 30.0


def _calls(max_gap: float) -> st.SearchStrategy[list[tuple[int, int, int, float]]]:
    """(client 0/1, seq 1..6, how far lowest_pending trails seq, seconds since the last call)."""
    call_ = st.tuples(
        st.integers(0, 1), st.integers(1, 6), st.integers(0, 6), st.floats(0, max_gap)
    )
    return st.lists(call_, min_size=1, max_size=40)


def _entries(calls: list[tuple[int, int, int, float]]) -> list[Entry]:
    log = Log()
    entries = []
    now = 1000.0
    for client, seq, trail, gap in calls:
        now += gap
        client_id = (CLIENT_A, CLIENT_B)[client]
        lowest_pending = max(1, seq - trail)
        cmd = call(
            "rec",
            "record",
            (client, seq),
            seq=seq,
            client=client_id,
            cls=Recorder,
            at=now,
            lowest_pending=lowest_pending,
        )
        entries.append(log.command(cmd))
    return entries


def _machine() -> tuple[StateMachine, Recorder]:
    machine = StateMachine(session_ttl=TTL)
    return machine, machine.attach("rec", Recorder())


@settings(max_examples=80, deadline=None)
@given(calls=_calls(max_gap=TTL / 50))
def test_each_call_runs_at_most_once_and_retries_see_the_first_outcome(
    calls: list[tuple[int, int, int, float]],
) -> None:
    """Within the session ttl (40 calls span < 0.8 ttl), no call runs twice."""
    machine, recorder = _machine()
    first_value: dict[tuple[int, bytes], object] = {}
    for entry in _entries(calls):
        outcome = machine.apply(entry).commands[0]
        tag = outcome.seq, outcome.client_id
        if outcome.error is None:
            assert first_value.setdefault(tag, outcome.value) == outcome.value
    counts = Tally(tag for tag, _ in recorder.applied)
    assert max(counts.values()) == 1, f"applied twice: {counts}"


@settings(max_examples=60, deadline=None)
@given(calls=_calls(max_gap=TTL / 4), cut=st.integers(0, 40))
def test_restoring_a_snapshot_midway_changes_nothing(
    calls: list[tuple[int, int, int, float]], cut: int
) -> None:
    entries = _entries(calls)
    """Sessions (including their expiry) and objects survive a snapshot exactly."""
    cut = min(cut, len(entries))
    straight, straight_recorder = _machine()
    for entry in entries:
        straight.apply(entry)
    first, _ = _machine()
    for entry in entries[:cut]:
        first.apply(entry)
    second, second_recorder = _machine()
    second.restore(first.snapshot())
    for entry in entries[cut:]:
        second.apply(entry)
    assert second_recorder.applied == straight_recorder.applied
    assert second.snapshot() == straight.snapshot()
