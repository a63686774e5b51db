"""One replobj member for ``throughput.py``: a :class:`replobj.Node` with a counter attached.

Run by ``throughput.py`` as ``python benchmarks/_bench_replobj_member.py --id a ...``;
speaks the JSON-lines protocol of :mod:`_bench_common` on stdin/stdout. A ``load``
request runs the client inside this process: ``concurrency`` tasks each calling
``await counter.incr()`` in a loop, whether this member leads or follows.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _bench_common import LoadWindow, emit

import replobj
from replobj.errors import ReplObjError


@replobj.replicated
class Counter:
    """The benchmarked object: one integer."""

    def __init__(self) -> None:
        self.value = 0

    def incr(self, n: int = 1) -> int:
        """Add ``n``; returns the new value."""
        self.value += n
        return self.value


async def run_load(counter: Any, concurrency: int, warmup: float, duration: float) -> Any:
    """``concurrency`` tasks calling ``counter.incr()`` until the window closes."""
    window = LoadWindow(warmup, duration)

    async def client() -> None:
        while window.open():
            began = time.perf_counter()
            try:
                await counter.incr()
            except ReplObjError:
                window.errors += 1
                continue
            window.record(began)

    async with anyio.create_task_group() as tasks:
        for _ in range(concurrency):
            tasks.start_soon(client)
    return window.figures().to_json()


async def serve(node: replobj.Node, counter: Any) -> None:
    """Answer control requests until ``stop`` or end of stdin."""
    async with node:
        emit({"event": "ready"})
        stdin = anyio.wrap_file(sys.stdin)
        async for line in stdin:
            request = json.loads(line)
            op = request["op"]
            try:
                if op == "stop":
                    emit({"ok": True, "value": None})
                    break
                if op == "status":
                    status = node.status()
                    value = {"role": status.role, "term": status.term, "leader": status.leader}
                elif op == "load":
                    value = await run_load(
                        counter, request["concurrency"], request["warmup"], request["duration"]
                    )
                else:
                    raise ValueError(f"unknown op {op!r}")
                emit({"ok": True, "value": value})
            except Exception as exc:  # every failure goes back to the parent
                emit({"ok": False, "error": f"{type(exc).__name__}: {exc}"})


def main() -> None:
    """Parse the member's arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--id", required=True)
    parser.add_argument("--peers", required=True, help="id=host:port,...")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--election-timeout", type=float, default=1.0)
    parser.add_argument("--heartbeat", type=float, default=0.1)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {args.id} %(levelname)s %(name)s: %(message)s",
    )
    peers = dict(item.split("=", 1) for item in args.peers.split(","))
    node = replobj.Node(
        args.id,
        listen=peers[args.id],
        peers=peers,
        data_dir=args.data_dir,
        secret=os.environ.get("REPLOBJ_SECRET"),
        election_timeout=args.election_timeout,
        heartbeat_interval=args.heartbeat,
    )
    counter = node.attach("counter", Counter())
    anyio.run(serve, node, counter)


if __name__ == "__main__":
    main()
