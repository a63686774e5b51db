"""Command-line entry point: ``python -m replobj demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``replobj`` command line; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="replobj", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="run the demo (for now a deterministic simulation of a cluster)"
    )
    demo.add_argument("--seed", type=int, default=7, help="simulation seed (default 7)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .sim.demo import run_demo

        return run_demo(seed=args.seed)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
