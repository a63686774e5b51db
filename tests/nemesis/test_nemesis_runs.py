"""Seeded nemesis runs over real member processes (3 and 5): every check must hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from replobj.testing.nemesis import RunConfig, run_seed


@pytest.mark.parametrize(
    ("seed", "backend", "nodes"), [(1, "asyncio", 3), (2, "trio", 5), (3, "asyncio", 3)]
)
def test_a_seeded_fault_schedule_keeps_every_guarantee(
    seed: int, backend: str, nodes: int, tmp_path: Path
) -> None:
    config = RunConfig(seed, nodes=nodes, duration=8.0, backend=backend)
    report = run_seed(config, report_dir=tmp_path)
    print(report.summary())
    print(
        f"replay: python -m replobj.testing.nemesis --first-seed {seed} --seeds 1 "
        f"--nodes {nodes} --duration 8 --backend {backend} (data and logs: {report.workdir})"
    )
    assert report.faults, "the nemesis injected no fault"
    assert report.operations > 100
    assert report.appends_acknowledged > 20
    assert report.ok, report.summary() + "\n" + report.explanation
    assert report.plot, "matplotlib is a test dependency: the latency plot must be drawn"
    assert Path(report.plot).read_bytes().startswith(b"\x89PNG")


def test_failing_fsyncs_stop_the_member_and_lose_no_acknowledged_write(tmp_path: Path) -> None:
    config = RunConfig(4, nodes=3, duration=6.0, backend="trio", faults=("disk",))
    report = run_seed(config, report_dir=tmp_path)
    print(report.summary())
    for fault in report.faults:
        print(fault)
    print(
        "replay: python -m replobj.testing.nemesis --first-seed 4 --seeds 1 --nodes 3 "
        f"--duration 6 --backend trio --faults disk (data and logs: {report.workdir})"
    )
    stopped = [fault for fault in report.faults if "fsyncs failed, exit 1" in fault.note]
    assert stopped, f"no member stopped on a failed fsync: {report.faults}"
    assert any(fault.role == "leader" for fault in stopped)
    assert report.appends_acknowledged > 20
    assert report.ok, report.summary() + "\n" + report.explanation


def test_members_wiped_and_restarted_to_join_lose_nothing(tmp_path: Path) -> None:
    """``wipe``: SIGKILL, an emptied data directory and a restart under the same id with
    ``join=True`` (docs/operations.md), the leader included; every check must hold (the
    targeted schedules are in tests/raft/test_amnesia.py and test_disk_amnesia.py)."""
    config = RunConfig(5, nodes=3, duration=10.0, backend="asyncio", faults=("wipe",))
    report = run_seed(config, report_dir=tmp_path)
    print(report.summary())
    for fault in report.faults:
        print(fault)
    print(
        "replay: python -m replobj.testing.nemesis --first-seed 5 --seeds 1 --nodes 3 "
        f"--duration 10 --backend asyncio --faults wipe (data and logs: {report.workdir})"
    )
    wiped = [fault for fault in report.faults if fault.kind == "wipe"]
    assert wiped, f"no wipe: {report.faults}"
    # One member at a time: each wipe waits until the member has caught up (it may take a
    # few seconds on a busy machine, so a short run may hold only one wipe).
    assert all(fault.note.startswith("caught up to") for fault in wiped), wiped
    assert report.appends_acknowledged > 20
    assert report.local_reads > 20
    assert report.ok, report.summary() + "\n" + report.explanation
