"""Members as OS processes, driven over a JSON-lines control channel on stdin/stdout.

The member side, :func:`serve_member`, runs one :class:`~replobj.Node` with the given
objects attached and answers one JSON object per line on stdin with one per line on
stdout (logs go to stderr). The parent side,
:class:`~replobj.demo.cluster.ProcessCluster`, spawns, kills and restarts members and
sends them requests.

A request is ``{"rid": N, "op": OP, ...}``; the answer ``{"rid": N, "ok": true,
"value": ...}`` or ``{"rid": N, "ok": false, "error": TYPE, "message": TEXT,
"outcome_known": BOOL | null}``. Requests are served concurrently. Operations:

- ``call`` (``object``, ``method``, ``args``, ``timeout``): a command through the log;
- ``read`` (``object``, ``method``, ``args``, ``timeout``): a linearizable query;
- ``local`` (``object``, ``method``, ``args``): a query on this replica as it is;
- ``status``; ``leader`` (``timeout``); ``add_member`` (``node``, ``address``);
  ``remove_member`` (``node``); ``transfer`` (``to``); ``snapshot``; ``stop``;
- ``net`` (``block_to``, ``block_from``: peer ids; ``drop``, ``duplicate``: rates;
  ``delay``: ``[low, high]`` seconds): replace this member's network faults (only with
  ``--net-faults SEED``, which wraps the transport in a
  :class:`~replobj.transport.FaultyTransport`); ``{"op": "net"}`` heals everything.

Once the node serves, the member prints ``{"event": "ready", "node": ID, "pid": PID}``.
End of stdin (the parent went away) stops the member like ``stop``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import threading
import zlib
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import anyio
import anyio.from_thread

from ..event_loop import backend_options
from ..node import Node
from ..secret import check_secret
from ..transport import FaultyTransport, Transport

__all__ = ["ObjectFactories", "parse_peers", "serve_member", "to_json"]

ObjectFactories = Mapping[str, Callable[[], object]]
"""Object name → a callable building the (``@replicated``) object to attach under it."""

SECRET_ENV = "REPLOBJ_SECRET"
"""Environment variable a member reads its cluster secret from (kept off the command line)."""


def parse_peers(text: str) -> dict[str, str]:
    """``"a=127.0.0.1:7001,b=..."`` → ``{"a": "127.0.0.1:7001", ...}``.

    :raises ValueError: if an item is not ``id=host:port``.
    """
    peers: dict[str, str] = {}
    for item in filter(None, text.split(",")):
        node, sep, address = item.partition("=")
        if not sep or not node or not address:
            raise ValueError(f"expected id=host:port, got {item!r}")
        peers[node] = address
    return peers


def to_json(value: Any) -> Any:
    """``json.dumps`` fallback: dataclasses as dicts, sets as sorted lists, else ``repr``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return repr(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="member", description="run one replobj member under JSON-lines control"
    )
    parser.add_argument("--id", required=True, help="this member's id")
    parser.add_argument("--listen", required=True, help="host:port to listen on")
    parser.add_argument("--peers", default="", help="id=host:port,... (founders, or members)")
    parser.add_argument("--data-dir", default=None, help="RocksDB directory (default: memory)")
    parser.add_argument("--join", action="store_true", help="join a running cluster")
    parser.add_argument("--election-timeout", type=float, default=1.0)
    parser.add_argument("--heartbeat", type=float, default=0.1)
    parser.add_argument("--call-timeout", type=float, default=10.0)
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    parser.add_argument("--transport", default="tcp", choices=["tcp", "udp"])
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument(
        "--net-faults",
        type=int,
        default=None,
        metavar="SEED",
        help="wrap the transport in a FaultyTransport seeded with SEED (the `net` operation)",
    )
    return parser


def serve_member(objects: ObjectFactories, argv: list[str] | None = None) -> int:
    """Run one member until ``stop`` or end of stdin; returns the exit status.

    :param objects: what to attach, by name (the same on every member).
    :param argv: the command-line arguments (see ``--help``); ``sys.argv[1:]`` if ``None``.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s {args.id} %(levelname)s %(name)s: %(message)s",
    )
    node = Node(
        args.id,
        listen=args.listen,
        peers=parse_peers(args.peers),
        data_dir=args.data_dir,
        secret=check_secret(os.environ.get(SECRET_ENV), parameter=f"${SECRET_ENV}"),
        join=args.join,
        election_timeout=args.election_timeout,
        heartbeat_interval=args.heartbeat,
        call_timeout=args.call_timeout,
        transport=args.transport,
        wrap_transport=None if args.net_faults is None else _faulty(args.net_faults, args.id),
    )
    proxies = {name: node.attach(name, make()) for name, make in objects.items()}
    control = sys.stdout
    sys.stdout = sys.stderr  # what the application prints goes to the log, not the channel
    try:
        anyio.run(
            _Member(node, proxies, control).run,
            backend=args.backend,
            backend_options=backend_options(args.backend),
        )
    finally:
        sys.stdout = control
    return 0


def _faulty(seed: int, node_id: str) -> Callable[[Transport], Transport]:
    def wrap(transport: Transport) -> Transport:
        return FaultyTransport(transport, seed=zlib.crc32(f"{seed}:{node_id}".encode()))

    return wrap


def _set_net_faults(transport: Transport | None, request: dict[str, Any]) -> dict[str, int]:
    """Replace the faults of this member's :class:`FaultyTransport` with the request's."""
    if not isinstance(transport, FaultyTransport):
        raise ValueError("network faults need the member started with --net-faults SEED")
    transport.heal()
    for peer in request.get("block_to", ()):
        transport.partition(peer, outgoing=True, incoming=False)
    for peer in request.get("block_from", ()):
        transport.partition(peer, outgoing=False, incoming=True)
    transport.drop_rate = float(request.get("drop", 0.0))
    transport.duplicate_rate = float(request.get("duplicate", 0.0))
    low, high = request.get("delay", (0.0, 0.0))
    transport.delay = (float(low), float(high))
    return dataclasses.asdict(transport.faults)


class _Member:
    """Serves control requests for one node."""

    def __init__(self, node: Node, proxies: dict[str, Any], control: TextIO) -> None:
        self.node = node
        self.proxies = proxies
        self.control = control
        self.stopping = anyio.Event()

    async def run(self) -> None:
        async with self.node, anyio.from_thread.BlockingPortal() as portal:
            self._emit({"event": "ready", "node": self.node.id, "pid": os.getpid()})
            reader = threading.Thread(target=self._read_stdin, args=(portal,), daemon=True)
            reader.start()
            await self.stopping.wait()
            await portal.stop(cancel_remaining=True)

    def _read_stdin(self, portal: anyio.from_thread.BlockingPortal) -> None:
        try:
            for line in sys.stdin:
                if line.strip():
                    portal.start_task_soon(self.handle, line)
            portal.call(self.stopping.set)
        except RuntimeError:
            return  # the portal stopped: the member is shutting down

    def _emit(self, message: dict[str, Any]) -> None:
        self.control.write(json.dumps(message, default=to_json) + "\n")
        self.control.flush()

    async def handle(self, line: str) -> None:
        """Answer one request line."""
        rid = None
        try:
            request = json.loads(line)
            rid = request.get("rid")
            reply = {"rid": rid, "ok": True, "value": await self._dispatch(request)}
        except Exception as exc:  # every failure goes back to the caller
            reply = {
                "rid": rid,
                "ok": False,
                "error": type(exc).__name__,
                "message": str(exc),
                "outcome_known": getattr(exc, "outcome_known", None),
            }
        self._emit(reply)

    async def _dispatch(self, request: dict[str, Any]) -> Any:
        op = request["op"]
        node = self.node
        timeout = request.get("timeout")
        args = tuple(request.get("args", ()))
        if op in ("call", "read", "local"):
            method = getattr(self.proxies[request["object"]], request["method"])
            if op == "call":
                return await method.call(args, request.get("kwargs", {}), timeout=timeout)
            if op == "read":
                await node.read_barrier(timeout)
            return await method.local(*args)
        if op == "status":
            return node.status()
        if op == "leader":
            return await node.wait_for_leader(timeout)
        if op == "add_member":
            return await node.add_member(request["node"], request["address"], timeout=timeout)
        if op == "remove_member":
            return await node.remove_member(request["node"], timeout=timeout)
        if op == "transfer":
            return await node.transfer_leadership(request.get("to"))
        if op == "snapshot":
            return await node.snapshot()
        if op == "net":
            return _set_net_faults(node.transport, request)
        if op == "stop":
            self.stopping.set()
            return None
        raise ValueError(f"unknown operation {op!r}")
