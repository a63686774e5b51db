"""Command-line entry point: ``python -m replobj demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``replobj`` command line; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="replobj", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "demo", help="run the demo (for now a deterministic simulation of a cluster)"
    )
    args = parser.parse_args(argv)
    from .sim.demo import run_demo

    assert args.command == "demo"
    return run_demo()


if __name__ == "__main__":
    sys.exit(main())
