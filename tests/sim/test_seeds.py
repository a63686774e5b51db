"""The main simulation run: thousands of seeded clusters with faults, zero violations allowed."""

from __future__ import annotations

import os

from replobj.sim import run_many

SEEDS = int(os.environ.get("REPLOBJ_SIM_SEEDS", "2000"))
"""How many seeds the suite runs (override with ``REPLOBJ_SIM_SEEDS``)."""


def test_thousands_of_seeds_hold_every_safety_and_liveness_check() -> None:
    summary = run_many(0, SEEDS, jobs=2)
    print(summary.describe())
    failures = [f"seed {f.seed}:\n{f.error}" for f in summary.failures]
    assert summary.seeds == SEEDS
    assert not failures, "\n\n".join(failures[:3])
    assert set(summary.by_size) == {3, 5, 7}
