"""Seeded nemesis runs over three real member processes: every check must hold."""

from __future__ import annotations

import pytest

from replobj.testing.nemesis import RunConfig, run_seed


@pytest.mark.parametrize(("seed", "backend"), [(1, "asyncio"), (2, "trio"), (3, "asyncio")])
def test_a_seeded_fault_schedule_keeps_every_guarantee(seed: int, backend: str) -> None:
    config = RunConfig(seed, duration=8.0, backend=backend)
    report = run_seed(config)
    print(report.summary())
    print(
        f"replay: python -m replobj.testing.nemesis --first-seed {seed} --seeds 1 "
        f"--duration 8 --backend {backend} (data and logs: {report.workdir})"
    )
    assert report.faults, "the nemesis injected no fault"
    assert report.operations > 100
    assert report.appends_acknowledged > 20
    assert report.ok, report.summary() + "\n" + report.explanation
