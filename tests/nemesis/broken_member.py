"""A deliberately broken member build, for showing that the nemesis checks catch it.

Usage: ``python broken_member.py BREAK MEMBER-ARGS...`` where ``BREAK`` is one of
:data:`BREAKS`; the rest are the arguments of ``python -m replobj.demo member``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from replobj import demo
from replobj.node import Node
from replobj_rocksdb import RocksDBStorage


async def _no_read_barrier(self: Node, timeout: float | None = None) -> None:
    """Answers "linearizable" reads from this replica's state as it is (no ReadIndex)."""
    self._check_member()


def _serve_reads_locally() -> None:
    Node.read_barrier = _no_read_barrier  # type: ignore[method-assign]


def _skip_fsync(self: RocksDBStorage) -> None:
    """Reports the log durable without syncing it (so the node acknowledges before fsync)."""


def _acknowledge_before_fsync() -> None:
    RocksDBStorage.sync = _skip_fsync  # type: ignore[method-assign]


BREAKS: dict[str, Callable[[], None]] = {
    "stale-reads": _serve_reads_locally,
    "ack-before-fsync": _acknowledge_before_fsync,
}
"""``stale-reads``: linearizable reads served from the member's local state;
``ack-before-fsync``: the write-ahead log is never synced, yet entries count as durable."""

if __name__ == "__main__":
    BREAKS[sys.argv[1]]()
    sys.exit(demo.main(["member", *sys.argv[2:]]))
