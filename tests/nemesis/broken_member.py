"""A deliberately broken member build, for showing that the nemesis checks catch it.

Usage: ``python broken_member.py BREAK MEMBER-ARGS...`` where ``BREAK`` is one of
:data:`BREAKS`; the rest are the arguments of ``python -m replobj.demo member``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from replobj import demo
from replobj.node import Node


async def _no_read_barrier(self: Node, timeout: float | None = None) -> None:
    """Answers "linearizable" reads from this replica's state as it is (no ReadIndex)."""
    self._check_member()


def _serve_reads_locally() -> None:
    Node.read_barrier = _no_read_barrier  # type: ignore[method-assign]


BREAKS: dict[str, Callable[[], None]] = {"stale-reads": _serve_reads_locally}
"""``stale-reads``: linearizable reads served from the member's local state."""

if __name__ == "__main__":
    BREAKS[sys.argv[1]]()
    sys.exit(demo.main(["member", *sys.argv[2:]]))
