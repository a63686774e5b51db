"""Summarise ``py-spy record --format raw`` files: where a member's time goes.

Run ``.venv/bin/python benchmarks/profile_summary.py DIR [--top N]`` on the directory
``throughput.py --profile DIR`` wrote (one file per row, system and member). For every
file it prints the functions with the most samples on top of the stack (self time) and
the ones with the most samples anywhere in the stack (inclusive time, leaving out the
frames every stack shares: the event loop, ``main``, thread start-up), as percentages of
the file's samples. ``throughput.py`` records with ``--gil``: only the thread holding the
GIL is sampled, so the samples are the process's Python CPU time.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

PLUMBING = (
    "run (",
    "Runner.run (",
    "main (",
    "<module> (",
    "BaseEventLoop.",
    "count_wakeups.",
    "Handle._run (",
    "TaskHandle._run_coro (",
    "Thread._bootstrap",
    "Thread.run (",
    "AsyncIOBackend.run (",
    "WorkerThread.run (",
    "_worker (",
)
"""Frames nearly every stack goes through: not a cost of their own."""


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    """Each distinct stack (outermost frame first) and its sample count."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks[tuple(frames.split(";"))] += int(count)
    return stacks


def _short(frame: str) -> str:
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file, _, _line = where.rpartition(":")
    parts = Path(file).parts
    return f"{name} ({'/'.join(parts[-2:])})"


def summarise(path: Path, top: int) -> None:
    """Print the top functions of one profile."""
    stacks = read_stacks(path)
    total = sum(stacks.values())
    if not total:
        print(f"## {path.name}: no samples\n")
        return
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    for stack, count in stacks.items():
        own[_short(stack[-1])] += count
        for frame in {_short(f) for f in stack if not f.startswith(PLUMBING)}:
            anywhere[frame] += count
    print(f"## {path.name}: {total} samples\n")
    print("| self % | function | | inclusive % | function |\n|---|---|---|---|---|")
    for (name, n), (iname, i) in zip(own.most_common(top), anywhere.most_common(top), strict=False):
        print(f"| {100 * n / total:.1f} | {name} | | {100 * i / total:.1f} | {iname} |")
    print()


def main() -> None:
    """Summarise every profile in the directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--match", default="", help="only files whose name contains this")
    args = parser.parse_args()
    for path in sorted(args.directory.glob("*.txt")):
        if args.match in path.name:
            summarise(path, args.top)


if __name__ == "__main__":
    main()
