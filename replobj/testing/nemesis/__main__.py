"""``python -m replobj.testing.nemesis``: run seeded nemesis runs and print a table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .report import ALL_FAULT_KINDS, FAULT_KINDS, RunConfig, RunReport, format_table
from .runner import run_seed


def main(argv: list[str] | None = None) -> int:
    """Run the campaign the arguments describe; returns 0 only if every run passed.

    :param argv: command-line arguments (``sys.argv[1:]`` if ``None``).
    """
    parser = argparse.ArgumentParser(
        prog="python -m replobj.testing.nemesis",
        description="real member processes under seeded faults, histories checked",
    )
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds to run")
    parser.add_argument("--first-seed", type=int, default=1, help="the first seed")
    parser.add_argument("--duration", type=float, default=12.0, help="seconds of load per run")
    parser.add_argument(
        "--backend", default="both", choices=["asyncio", "trio", "both"], help="members' backend"
    )
    parser.add_argument(
        "--nodes", default="3", help="cluster sizes, cycled over the seeds (e.g. 3,5)"
    )
    parser.add_argument(
        "--transport", default="tcp", help="members' transports, cycled over the seeds (tcp,udp)"
    )
    parser.add_argument("--faults", default=",".join(FAULT_KINDS), help="kinds to inject")
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="record every timeout as a call of unknown outcome (by default a timeout with "
        "outcome_known=True is taken at its word: the call did not apply)",
    )
    parser.add_argument("--report-dir", type=Path, default=None, help="write JSON reports here")
    parser.add_argument("--keep", action="store_true", help="keep data and logs of every run")
    args = parser.parse_args(argv)
    faults = tuple(kind for kind in args.faults.split(",") if kind)
    unknown = set(faults) - set(ALL_FAULT_KINDS)
    if unknown:
        parser.error(f"unknown fault kinds {sorted(unknown)}; choose from {ALL_FAULT_KINDS}")
    sizes = [int(size) for size in args.nodes.split(",") if size]
    if not sizes or min(sizes) < 3:
        parser.error("--nodes takes cluster sizes of at least 3, e.g. 3 or 3,5")
    transports = [name for name in args.transport.split(",") if name]
    if not transports or set(transports) - {"tcp", "udp"}:
        parser.error("--transport takes tcp, udp or both, e.g. tcp,udp")
    reports: list[RunReport] = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        backend = args.backend
        if backend == "both":
            backend = "asyncio" if seed % 2 else "trio"
        config = RunConfig(
            seed,
            nodes=sizes[(seed - args.first_seed) % len(sizes)],
            transport=transports[(seed - args.first_seed) % len(transports)],
            duration=args.duration,
            backend=backend,
            faults=faults,
            trust_outcome_known=not args.lenient,
        )
        report = run_seed(config, args.report_dir, keep=args.keep)
        print(report.summary(), flush=True)
        if not report.ok:
            print(f"    data and logs kept in {report.workdir}", flush=True)
            if report.explanation:
                print(report.explanation, flush=True)
        reports.append(report)
    print()
    print(format_table(reports))
    return 0 if all(report.ok for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
