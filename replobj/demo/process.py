"""The parent side of one member process: start it, send it requests, kill or stop it.

Each member runs :func:`replobj.demo.member.serve_member` in its own process and is
spoken to over the JSON-lines protocol documented there. Data directories and logs
live under one work directory (``<workdir>/<id>/`` and ``<workdir>/<id>.log``) so a
killed member restarts from its own data, and a failure can be investigated.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from ..errors import ReplObjError
from .member import SECRET_ENV, to_json

__all__ = [
    "MemberError",
    "MemberExitedError",
    "MemberProcess",
    "MemberSpec",
    "free_port",
    "status_table",
]

_LINE_LIMIT = 1 << 24


class MemberError(ReplObjError):
    """A member answered a request with an error (``kind`` names the exception type).

    :param node: the member's id.
    :param kind: the exception's class name on the member.
    :param message: its message.
    :param outcome_known: for a timed-out call, whether it certainly did not apply.
    """

    def __init__(self, node: str, kind: str, message: str, outcome_known: bool | None) -> None:
        super().__init__(f"{node}: {kind}: {message}")
        self.node = node
        self.kind = kind
        self.outcome_known = outcome_known


class MemberExitedError(MemberError):
    """The member's process is not running (killed, crashed or stopped): no answer came."""


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """How to (re)start one member.

    :param node_id: its id.
    :param address: ``host:port`` it listens on.
    :param peers: the ``--peers`` it starts with.
    :param join: whether it joins a running cluster.
    :param data_dir: its RocksDB directory.
    :param log_path: where its stderr goes (appended across restarts).
    """

    node_id: str
    address: str
    peers: dict[str, str]
    join: bool
    data_dir: Path
    log_path: Path

    def argv(self) -> list[str]:
        """The member's command-line arguments."""
        peers = ",".join(f"{n}={a}" for n, a in sorted(self.peers.items()))
        argv = ["--id", self.node_id, "--listen", self.address, "--peers", peers]
        argv += ["--data-dir", str(self.data_dir)]
        return [*argv, "--join"] if self.join else argv


class _Reply:
    __slots__ = ("done", "message")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.message: dict[str, Any] | None = None


class MemberProcess:
    """One running member and its control channel; made by ``ProcessCluster.spawn``."""

    def __init__(self, spec: MemberSpec, process: anyio.abc.Process, log: IO[bytes]) -> None:
        self.spec = spec
        self.process = process
        self._log = log
        self._replies: dict[int, _Reply] = {}
        self._next_rid = 0
        self._send_lock = anyio.Lock()
        self._ready = anyio.Event()
        self.exited = anyio.Event()

    @property
    def pid(self) -> int:
        """The member's process id."""
        return self.process.pid

    @property
    def node_id(self) -> str:
        """The member's id."""
        return self.spec.node_id

    async def read_replies(self) -> None:
        """Dispatch the member's control lines until it exits (lines that are not JSON
        objects are ignored)."""
        assert self.process.stdout is not None
        stream = BufferedByteReceiveStream(self.process.stdout)
        try:
            while True:
                line = await stream.receive_until(b"\n", _LINE_LIMIT)
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                if message.get("event") == "ready":
                    self._ready.set()
                reply = self._replies.pop(message.get("rid", -1), None)
                if reply is not None:
                    reply.message = message
                    reply.done.set()
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError):
            pass
        finally:
            self.exited.set()
            for reply in self._replies.values():
                reply.done.set()
            self._replies.clear()
            self._log.close()

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the member's node serves.

        :raises MemberExitedError: if it exited or did not get ready within ``timeout``.
        """
        with anyio.move_on_after(timeout):
            async with anyio.create_task_group() as tasks:

                async def either(event: anyio.Event) -> None:
                    await event.wait()
                    tasks.cancel_scope.cancel()

                tasks.start_soon(either, self._ready)
                tasks.start_soon(either, self.exited)
        if not self._ready.is_set() or self.exited.is_set():
            raise MemberExitedError(
                self.node_id, "NotReady", f"did not start; see {self.spec.log_path}", None
            )

    async def request(self, op: str, *, timeout: float | None = None, **fields: Any) -> Any:
        """Send one request and return its ``value``.

        :param timeout: passed to the member; the parent waits a little longer.
        :raises MemberError: with the member's exception type, message and outcome.
        :raises MemberExitedError: if the member is gone or did not answer in time.
        """
        if self.exited.is_set():
            raise MemberExitedError(self.node_id, "Exited", f"cannot send {op!r}", None)
        self._next_rid += 1
        rid = self._next_rid
        reply = self._replies[rid] = _Reply()
        body = {"rid": rid, "op": op, "timeout": timeout, **fields}
        data = (json.dumps(body, default=to_json) + "\n").encode()
        assert self.process.stdin is not None
        try:
            async with self._send_lock:
                await self.process.stdin.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            self._replies.pop(rid, None)
            raise MemberExitedError(self.node_id, "Exited", f"cannot send {op!r}", None) from None
        with anyio.move_on_after((timeout or 30.0) + 5.0):
            await reply.done.wait()
        self._replies.pop(rid, None)
        message = reply.message
        if message is None:
            kind = "Exited" if self.exited.is_set() else "NoAnswer"
            raise MemberExitedError(self.node_id, kind, f"no answer to {op!r}", None)
        if not message["ok"]:
            raise MemberError(
                self.node_id, message["error"], message["message"], message["outcome_known"]
            )
        return message["value"]

    async def call(self, obj: str, method: str, *args: Any, timeout: float | None = None) -> Any:
        """Run command ``obj.method(*args)`` through the log from this member."""
        return await self.request("call", object=obj, method=method, args=args, timeout=timeout)

    async def read(self, obj: str, method: str, *args: Any, timeout: float | None = None) -> Any:
        """Run query ``obj.method(*args)`` after a linearizable read barrier on this member."""
        return await self.request("read", object=obj, method=method, args=args, timeout=timeout)

    async def local(self, obj: str, method: str, *args: Any) -> Any:
        """Run query ``obj.method(*args)`` on this member's replica as it is."""
        return await self.request("local", object=obj, method=method, args=args)

    async def status(self) -> dict[str, Any]:
        """The member's ``Node.status()`` as a dict."""
        result: dict[str, Any] = await self.request("status", timeout=5.0)
        return result

    async def net(self, **faults: Any) -> dict[str, int]:
        """Replace the member's network faults (the ``net`` operation: ``block_to``,
        ``block_from``, ``drop``, ``duplicate``, ``delay``); no arguments heal it. Returns
        the counters of faults injected so far."""
        result: dict[str, int] = await self.request("net", timeout=5.0, **faults)
        return result

    async def kill(self) -> None:
        """SIGKILL the member and wait until it is gone."""
        if self.process.returncode is None:
            self.process.kill()
        await self._reap()

    async def _reap(self) -> None:
        await self.process.wait()
        await self.exited.wait()
        await self.process.aclose()

    async def stop(self, grace: float = 5.0) -> None:
        """Ask the member to stop cleanly (a leader hands over first); kill it after ``grace``."""
        with anyio.move_on_after(grace):
            with contextlib.suppress(MemberError):
                await self.request("stop", timeout=grace)
            await self._reap()
            return
        await self.kill()


async def start_process(
    spec: MemberSpec, program: Sequence[str], secret: str, extra: Sequence[str]
) -> MemberProcess:
    """Start the member's process (not yet ready: run ``read_replies`` then ``wait_ready``)."""
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    log = spec.log_path.open("ab")
    env = dict(os.environ)
    env[SECRET_ENV] = secret
    process = await anyio.open_process(
        [*program, *spec.argv(), *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        env=env,
    )
    return MemberProcess(spec, process, log)


def status_table(rows: Sequence[dict[str, Any]]) -> str:
    """Format member statuses (``MemberProcess.status()`` results) as an aligned table."""
    header = ("node", "role", "term", "leader", "commit", "applied", "last", "snapshot", "voters")
    keys = ("role", "term", "leader", "commit_index", "applied_index", "last_index")
    lines: list[tuple[str, ...]] = [header]
    lines += [
        (
            str(row["id"]),
            *(str(row[key] if row[key] is not None else "-") for key in keys),
            str(row["snapshot_index"]),
            ",".join(row["voters"]),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "    " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
