"""Command line: replay one seed with a trace, or soak many seeds.

``python -m replobj.sim --seed 1234 -v`` replays one run and prints every event;
``python -m replobj.sim --seeds 100000 --start 0 --jobs 2`` runs a soak;
``python -m replobj.sim --demo`` narrates a five-node simulation.
The process re-executes itself with ``PYTHONHASHSEED=0`` so replays are exact.
"""

from __future__ import annotations

import argparse
import os
import sys

from .soak import HASH_SEED, SoakSummary, run_many


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m replobj.sim", description="Deterministic Raft cluster simulation."
    )
    parser.add_argument("--seed", type=int, help="replay this one seed")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every event")
    parser.add_argument("--seeds", type=int, default=0, help="number of seeds to soak")
    parser.add_argument("--start", type=int, default=0, help="first seed of the soak")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for the soak")
    parser.add_argument("--demo", action="store_true", help="narrate a five-node simulation")
    return parser


def _progress(summary: SoakSummary) -> None:
    print(
        f"  {summary.seeds} seeds, {len(summary.failures)} failed, {summary.elapsed:.1f} s",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (1 if any seed failed)."""
    args = _parser().parse_args(argv)
    if args.demo:
        from .demo import run_demo

        return run_demo()
    if args.seed is not None:
        from .scenario import run_seed

        try:
            result = run_seed(args.seed, verbose=args.verbose)
        except AssertionError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
        print(
            f"seed {result.seed} passed: {result.size} nodes, faults {', '.join(result.faults)}; "
            f"{result.events} events, {result.leaders} leaders, commit index {result.committed}, "
            f"{result.snapshots_installed} snapshot installs, {result.reads_ready} reads, "
            f"{result.elapsed * 1000:.0f} ms"
        )
        return 0
    if args.seeds <= 0:
        _parser().print_help()
        return 2
    print(f"soaking seeds {args.start}..{args.start + args.seeds - 1} on {args.jobs} workers")
    every = max(100, min(5000, args.seeds // 20))
    summary = run_many(args.start, args.seeds, jobs=args.jobs, progress=_progress, every=every)
    print(summary.describe())
    return 1 if summary.failures else 0


def _pin_hash_seed() -> None:
    if os.environ.get("PYTHONHASHSEED") != HASH_SEED:
        os.environ["PYTHONHASHSEED"] = HASH_SEED
        os.execv(sys.executable, [sys.executable, "-m", "replobj.sim", *sys.argv[1:]])


if __name__ == "__main__":
    _pin_hash_seed()
    sys.exit(main())
