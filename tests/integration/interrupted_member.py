"""One member of a 3-process cluster run under ``replobj.run``: stopped with Ctrl-C.

``python interrupted_member.py ID ADDRESSES_JSON DATA_DIR``; prints ``leader X`` on stdout
at each leader change. The secret comes from ``REPLOBJ_SECRET``.
"""

from __future__ import annotations

import json
import os
import sys

import replobj


@replobj.replicated(name="tests.Tally")
class Tally:
    """A number that only commands change."""

    def __init__(self) -> None:
        self.value = 0

    def add(self, n: int) -> int:
        """Add ``n``; the new value."""
        self.value += n
        return self.value


async def main(me: str, peers: dict[str, str], data_dir: str) -> None:
    node = replobj.Node(
        me, listen=peers[me], peers=peers, data_dir=data_dir, secret=os.environ["REPLOBJ_SECRET"],
        election_timeout=2.0, heartbeat_interval=0.1,
    )  # fmt: skip
    node.attach("tally", Tally())
    async with node:
        async for leader in node.leader_changes():
            print(f"leader {leader}", flush=True)


if __name__ == "__main__":
    replobj.run(main, sys.argv[1], json.loads(sys.argv[2]), sys.argv[3])
