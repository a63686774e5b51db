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
