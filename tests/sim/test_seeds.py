"""The main simulation run: thousands of seeded clusters with faults, zero violations allowed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from replobj.sim import run_many, run_seed

SEEDS = int(os.environ.get("REPLOBJ_SIM_SEEDS", "2000"))
"""How many seeds the suite runs (override with ``REPLOBJ_SIM_SEEDS``)."""
JOBS = int(os.environ.get("REPLOBJ_SIM_JOBS", str(os.cpu_count() or 2)))
"""Worker processes for them: one per core by default (override with ``REPLOBJ_SIM_JOBS``).
The simulator's profile is flat (no function above 5% of its own time), so the seeds are
spread over every core rather than made faster one by one."""


CHUNK = 500
"""Seeds per test: the 2,000 run as four tests, so each one stays far inside its timeout on a
loaded machine (the whole run once took 476 s there) and a failure names its quarter."""


@pytest.mark.timeout(900)
@pytest.mark.parametrize("first", range(0, SEEDS, CHUNK), ids=lambda first: f"seeds-{first}")
def test_thousands_of_seeds_hold_every_safety_and_liveness_check(first: int) -> None:
    count = min(CHUNK, SEEDS - first)
    summary = run_many(first, count, jobs=JOBS)
    print(summary.describe())
    failures = [f"seed {f.seed}:\n{f.error}" for f in summary.failures]
    assert summary.seeds == count
    assert not failures, "\n\n".join(failures[:3])
    assert set(summary.by_size) == {3, 5, 7}


def test_a_few_seeds_in_process() -> None:
    """A few seeds in this process too, so coverage of the core sees the fault paths."""
    for seed in range(12):
        result = run_seed(seed)
        assert result.seed == seed
        assert result.committed > 0


def test_cli_replays_one_seed_with_a_trace() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "replobj.sim", "--seed", "3", "-v"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[-1].startswith("seed 3 passed")
    assert any(" recv " in line for line in lines)


def test_a_seed_replays_identically() -> None:
    first, second = run_seed(21), run_seed(21)
    assert (first.events, first.leaders, first.committed, first.reads_ready) == (
        second.events,
        second.leaders,
        second.committed,
        second.reads_ready,
    )
