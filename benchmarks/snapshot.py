"""How long a snapshot holds the event loop, by state size (RAFT-PITFALLS 24).

A snapshot is serialised on the event loop: while it runs, no heartbeat leaves. This prints,
for flat ``str -> int`` tables of growing size, the bytes and seconds of
``StateMachine.snapshot()`` and of restoring it, and that time as a share of the default
election timeout (a share near 1 means followers start elections during the snapshot).

    .venv/bin/python benchmarks/snapshot.py [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import time

import replobj
from replobj.runtime import RuntimeOptions
from replobj.statemachine import StateMachine


@replobj.replicated
class Table:
    """A flat key-value table, the shape of a large replicated state."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}

    def put(self, key: str, value: int) -> None:
        """Set ``key`` to ``value``."""
        self.rows[key] = value


def measure(keys: int) -> tuple[int, float, float]:
    """Bytes, snapshot seconds and restore seconds for a table of ``keys`` rows."""
    machine = StateMachine()
    table = machine.attach("table", Table())
    table.rows = {f"key-{i}": i for i in range(keys)}
    started = time.perf_counter()
    data = machine.snapshot()
    taken = time.perf_counter() - started
    fresh = StateMachine()
    fresh.attach("table", Table())
    started = time.perf_counter()
    fresh.restore(data)
    restored = time.perf_counter() - started
    return len(data), taken, restored


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    sizes = [int(size) for size in parser.parse_args().sizes.split(",")]
    timeout = RuntimeOptions().election_timeout
    print("| keys | snapshot MB | snapshot s | restore s | share of election timeout |")
    print("|---:|---:|---:|---:|---:|")
    for keys in sizes:
        size, taken, restored = measure(keys)
        print(
            f"| {keys:,} | {size / 1e6:.1f} | {taken:.3f} | {restored:.3f} | "
            f"{taken / timeout:.2f} |"
        )


if __name__ == "__main__":
    main()
