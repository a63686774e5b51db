"""One replobj member for ``throughput.py``: a :class:`replobj.Node` with a counter attached.

Run by ``throughput.py`` as ``python benchmarks/_bench_replobj_member.py --id a ...``;
speaks the JSON-lines protocol of :mod:`_bench_common` on stdin/stdout. A ``load``
request runs the client inside this process: ``concurrency`` tasks each calling
``await counter.incr()`` (or ``get()``, ``get.local()``, ``get.local_now()``,
``incr.many(...)``: see ``KINDS``) in a loop, whether this member leads or follows. The
loop is uvloop when installed (``REPLOBJ_UVLOOP=0``: asyncio). ``--count-wakeups``
(asyncio only) counts event-loop iterations and callbacks run, reported by the ``cpu``
request.
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

import anyio.lowlevel
from _bench_common import KINDS, LOCAL_CHUNK, SECRET_ENV, LoadWindow, emit

import replobj
from replobj.errors import ReplObjError
from replobj.event_loop import backend_options

WAKEUPS = {"wakeups": 0, "handles": 0}
"""Event-loop iterations and callbacks run so far (with ``--count-wakeups``)."""


@replobj.replicated
class Counter:
    """The benchmarked object: one integer."""

    def __init__(self) -> None:
        self.value = 0

    def incr(self, n: int = 1) -> int:
        """Add ``n``; returns the new value."""
        self.value += n
        return self.value

    @replobj.query
    def get(self) -> int:
        """The value."""
        return self.value


async def run_load(counter: Any, request: dict[str, Any]) -> Any:
    """``concurrency`` tasks running ``kind`` calls until the window closes."""
    window = LoadWindow(request["warmup"], request["duration"])
    kind, batch = request["kind"], request.get("batch", 1)
    if kind not in KINDS:
        raise ValueError(f"unsupported: no {kind!r} load (this member knows {KINDS})")
    ones = [1] * batch

    async def one_call() -> None:
        began = time.perf_counter()
        if kind == "command":
            await counter.incr()
        elif kind == "read":
            await counter.get()
        else:
            await counter.incr.many(ones)
        window.record(began, batch if kind == "bulk" else 1)

    async def local_reads() -> None:
        began = time.perf_counter()
        local = counter.get.local
        for _ in range(LOCAL_CHUNK):
            await local()
        window.record(began, LOCAL_CHUNK, per_call=True)

    due = 0.0

    async def local_now_reads() -> None:
        # Synchronous reads never yield: yield once a millisecond, as local() does.
        nonlocal due
        began = time.perf_counter()
        local_now = counter.get.local_now
        for _ in range(LOCAL_CHUNK):
            local_now()
        window.record(began, LOCAL_CHUNK, per_call=True)
        if began >= due:
            await anyio.lowlevel.checkpoint()
            due = time.perf_counter() + 0.001

    call = {"local": local_reads, "localnow": local_now_reads}.get(kind, one_call)

    async def client() -> None:
        while window.open():
            try:
                await call()
            except ReplObjError:
                window.errors += 1

    async with anyio.create_task_group() as tasks:
        for _ in range(request["concurrency"]):
            tasks.start_soon(client)
    return window.figures().to_json()


def count_wakeups() -> None:
    """Count asyncio's loop iterations and callbacks run (in :data:`WAKEUPS`)."""
    import asyncio
    import asyncio.base_events
    import asyncio.events

    run_once = asyncio.base_events.BaseEventLoop._run_once  # type: ignore[attr-defined]
    handle_run = asyncio.events.Handle._run

    def counted_run_once(self: Any) -> None:
        WAKEUPS["wakeups"] += 1
        run_once(self)

    def counted_handle_run(self: Any) -> None:
        WAKEUPS["handles"] += 1
        handle_run(self)

    asyncio.base_events.BaseEventLoop._run_once = counted_run_once  # type: ignore[attr-defined]
    asyncio.events.Handle._run = counted_handle_run  # type: ignore[method-assign]


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
                elif op == "cpu":
                    times = os.times()
                    value = {
                        "cpu": time.process_time(),
                        "user": times.user,
                        "sys": times.system,
                        **WAKEUPS,
                    }
                elif op == "load":
                    value = await run_load(counter, request)
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
    parser.add_argument("--count-wakeups", action="store_true", help="asyncio loop only")
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
        secret=os.environ[SECRET_ENV],
        election_timeout=args.election_timeout,
        heartbeat_interval=args.heartbeat,
    )
    counter = node.attach("counter", Counter())
    if args.count_wakeups:
        count_wakeups()
        anyio.run(serve, node, counter)
    else:
        anyio.run(serve, node, counter, backend_options=backend_options())


if __name__ == "__main__":
    main()
