"""Command-line entry point: ``python -m replobj demo`` (and ``simulate``)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``replobj`` command line; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="replobj", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="a real 3-process cluster on loopback: kill the leader, lose nothing, "
        "add and remove members, print a status table",
    )
    demo.add_argument("--keep", action="store_true", help="keep the data directories")
    demo.add_argument("--trio", action="store_true", help="run the members on trio")
    commands.add_parser("simulate", help="a deterministic simulation of a 5-node cluster (no I/O)")
    args = parser.parse_args(argv)
    if args.command == "simulate":
        from .sim.demo import run_demo as run_simulation

        return run_simulation()
    from .demo import run_demo

    return run_demo(keep=args.keep, backend="trio" if args.trio else "asyncio")


if __name__ == "__main__":
    sys.exit(main())
