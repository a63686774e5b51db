"""Many seeds in parallel worker processes, for the test suite and long soaks.

Workers are spawned with ``PYTHONHASHSEED=0`` so a run is the same run as
``python -m replobj.sim --seed N`` (which pins the hash seed the same way).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .scenario import run_seed

HASH_SEED = "0"
"""The ``PYTHONHASHSEED`` every replayable run uses."""


@dataclass(frozen=True, slots=True)
class SeedOutcome:
    """The result of one seed: ``error`` is the failure message (None when it passed)."""

    seed: int
    size: int
    events: int
    error: str | None


@dataclass(slots=True)
class SoakSummary:
    """Totals over a range of seeds."""

    seeds: int = 0
    events: int = 0
    elapsed: float = 0.0
    by_size: Counter[int] = field(default_factory=Counter)
    failures: list[SeedOutcome] = field(default_factory=list)

    def add(self, outcome: SeedOutcome) -> None:
        """Count one outcome."""
        self.seeds += 1
        self.events += outcome.events
        self.by_size[outcome.size] += 1
        if outcome.error is not None:
            self.failures.append(outcome)

    def describe(self) -> str:
        """A multi-line human summary, failures first-lines included."""
        sizes = ", ".join(f"{n} nodes: {c}" for n, c in sorted(self.by_size.items()))
        lines = [
            f"{self.seeds} seeds, {len(self.failures)} failed, {self.events} events, "
            f"{self.elapsed:.1f} s ({self.seeds / max(self.elapsed, 1e-9):.0f} seeds/s); {sizes}"
        ]
        for failure in sorted(self.failures, key=lambda f: f.seed):
            first = (failure.error or "").splitlines()[0]
            lines.append(f"  FAILED seed {failure.seed}: {first}")
            lines.append(f"    replay: .venv/bin/python -m replobj.sim --seed {failure.seed} -v")
        return "\n".join(lines)


def check_seed(seed: int) -> SeedOutcome:
    """Run one seed and report instead of raising."""
    try:
        result = run_seed(seed)
    except AssertionError as exc:
        return SeedOutcome(seed, 0, 0, str(exc))
    return SeedOutcome(seed, result.size, result.events, None)


@contextmanager
def _pinned_hash_seed() -> Iterator[None]:
    previous = os.environ.get("PYTHONHASHSEED")
    os.environ["PYTHONHASHSEED"] = HASH_SEED
    try:
        yield
    finally:
        if previous is None:
            del os.environ["PYTHONHASHSEED"]
        else:
            os.environ["PYTHONHASHSEED"] = previous


def run_many(
    start: int,
    count: int,
    *,
    jobs: int = 2,
    progress: Callable[[SoakSummary], None] | None = None,
    every: int = 500,
) -> SoakSummary:
    """Run seeds ``start .. start+count-1`` on ``jobs`` spawned workers.

    :param progress: called with the running summary every ``every`` seeds.
    """
    summary = SoakSummary()
    started = time.perf_counter()
    seeds = range(start, start + count)
    context = multiprocessing.get_context("spawn")
    with _pinned_hash_seed(), context.Pool(max(1, jobs)) as pool:
        chunk = max(1, min(50, count // (jobs * 8) or 1))
        for outcome in pool.imap_unordered(check_seed, seeds, chunksize=chunk):
            summary.add(outcome)
            summary.elapsed = time.perf_counter() - started
            if progress is not None and summary.seeds % every == 0:
                progress(summary)
    summary.elapsed = time.perf_counter() - started
    return summary
