"""Deliberately broken member builds under the nemesis: the checks must catch each one."""

from __future__ import annotations

import sys
from pathlib import Path

from replobj.testing.nemesis import RunConfig, run_seed

BROKEN_MEMBER = Path(__file__).with_name("broken_member.py")


def broken_program(kind: str) -> tuple[str, ...]:
    """The command that runs a member built with the ``kind`` bug."""
    return (sys.executable, str(BROKEN_MEMBER), kind)


def test_linearizable_reads_served_from_local_state_are_caught() -> None:
    """A stale read needs a client on the cut-off side to read in the partition's first
    moments (its next put there blocks until it times out), so one schedule may show none
    on a busy machine: up to four seeds run, and one of them must be caught."""
    for seed in (41, 43, 45, 47):
        config = RunConfig(seed, duration=8.0, faults=("partition",))
        report = run_seed(config, program=broken_program("stale-reads"))
        print(report.summary())
        print(report.explanation)
        assert report.faults, "the nemesis injected no partition"
        if report.verdict == "not linearizable":
            assert not report.ok
            return
    raise AssertionError("reads served from local state passed as linearizable in 4 runs")


def test_acknowledging_before_fsync_is_caught_by_a_power_cut() -> None:
    config = RunConfig(42, duration=8.0, faults=("power-all",))
    report = run_seed(config, program=broken_program("ack-before-fsync"))
    print(report.summary())
    assert report.faults, "the nemesis cut no power"
    lost = [problem for problem in report.problems if "acknowledged" in problem]
    assert lost, report.problems
