"""Child of ``test_corrupt_data_dir.py``: a real one-member Node writes commands, then stops.

Usage: ``python corrupt_node_child.py DATA_DIR close|kill`` with the cluster secret in
``REPLOBJ_TEST_SECRET``. It writes :data:`COMMANDS` commands, each acknowledged. With
``close`` it leaves ``async with node:`` (RocksDB flushes everything into SST files) and
prints ``closed``; with ``kill`` it prints ``ready`` and waits to be SIGKILLed, so the
commands live only in the write-ahead log.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
import anyio.to_thread
from cluster_helpers import Register, free_port

import replobj

COMMANDS = 30
"""How many commands the child writes (and an undamaged copy must hold)."""
NODE_ID = "solo"
SECRET_ENV = "REPLOBJ_TEST_SECRET"


def node_options(data_dir: str | os.PathLike[str], secret: str) -> dict[str, Any]:
    """The one-member node's options, as the child runs it and the tests restart it."""
    address = f"127.0.0.1:{free_port()}"
    return {
        "listen": address,
        "peers": {NODE_ID: address},
        "data_dir": data_dir,
        "secret": secret,
        "election_timeout": 0.2,
        "heartbeat_interval": 0.05,
    }


async def main(data_dir: str, mode: str) -> None:
    node = replobj.Node(NODE_ID, **node_options(data_dir, os.environ[SECRET_ENV]))
    register = node.attach("reg", Register())
    async with node:
        for number in range(COMMANDS):
            await register.add(f"v{number}")
        if mode == "kill":
            print("ready", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.read)
    print("closed", flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
