"""A cluster of member processes on loopback: start, kill -9, restart, add and remove.

Used by ``python -m replobj demo``, the examples and the process integration tests.
Every wait has a deadline; :meth:`ProcessCluster.describe` gives the ports, data
directories and log tails to print when something goes wrong.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from ..secret import new_secret
from .process import (
    MemberError,
    MemberExitedError,
    MemberProcess,
    MemberSpec,
    free_port,
    start_process,
)

__all__ = ["ProcessCluster"]

_CATCH_UP_FIELDS = ("role", "term", "leader", "commit_index", "applied_index", "last_index")


class ProcessCluster:
    """Members as OS processes under ``workdir``; use as ``async with``.

    :param workdir: parent of every member's data directory and log file.
    :param program: the command that runs one member (its arguments are appended),
        e.g. ``[sys.executable, "-m", "replobj.demo", "member"]``.
    :param backend: the anyio backend the members run on.
    :param election_timeout: the members' election timeout in seconds.
    :param heartbeat: the members' heartbeat interval in seconds.
    :param call_timeout: the members' default call timeout in seconds.
    :param secret: the cluster secret (passed through the environment); a random one
        (:func:`replobj.new_secret`) when ``None``.
    :param log_level: the members' logging level (their logs go to ``<id>.log``).
    :param start_timeout: seconds a member may take to start serving.
    :param member_args: more arguments for every member (e.g. ``["--net-faults", "7"]``).
    :param before_spawn: awaited with a member's spec before each (re)start, e.g. to mount
        a filesystem on its data directory.
    """

    def __init__(
        self,
        workdir: Path,
        program: Sequence[str],
        *,
        backend: str = "asyncio",
        election_timeout: float = 0.5,
        heartbeat: float = 0.05,
        call_timeout: float = 10.0,
        secret: str | None = None,
        log_level: str = "INFO",
        start_timeout: float = 20.0,
        member_args: Sequence[str] = (),
        before_spawn: Callable[[MemberSpec], Awaitable[None]] | None = None,
    ) -> None:
        self.workdir = workdir
        self.program = list(program)
        self.secret = secret or new_secret()
        self.start_timeout = start_timeout
        self.call_timeout = call_timeout
        self._extra = [
            *("--backend", backend, "--log-level", log_level),
            *("--election-timeout", str(election_timeout), "--heartbeat", str(heartbeat)),
            *("--call-timeout", str(call_timeout)),
            *member_args,
        ]
        self.before_spawn = before_spawn
        self.members: dict[str, MemberProcess] = {}
        self.specs: dict[str, MemberSpec] = {}
        self._tasks: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> ProcessCluster:
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        assert self._tasks is not None
        with anyio.CancelScope(shield=True):
            await self.stop_all(grace=0.0 if exc is not None else 5.0)
        self._tasks.cancel_scope.cancel()
        return await self._tasks.__aexit__(exc_type, exc, traceback)

    @property
    def addresses(self) -> dict[str, str]:
        """Every member ever started (removed ones included), by id."""
        return {node: spec.address for node, spec in self.specs.items()}

    async def start(self, node_ids: Sequence[str], attempts: int = 3) -> None:
        """Start a new cluster with these founding members on free loopback ports.

        A port found free may be taken before the member binds it: if a member fails
        to start, every founder is discarded and the cluster started again on new ports.

        :raises MemberExitedError: (in an exception group) if the last attempt failed.
        """
        for attempt in range(1, attempts + 1):
            failed = False
            peers = {node: f"127.0.0.1:{free_port()}" for node in node_ids}
            try:
                async with anyio.create_task_group() as tasks:
                    for node in node_ids:
                        spec = self._spec(node, peers[node], peers, join=False)
                        tasks.start_soon(self.spawn, spec)
            except* MemberExitedError:
                if attempt == attempts:
                    raise
                failed = True
            if not failed:
                break
            await self._discard(node_ids)
        self.members = dict(sorted(self.members.items()))

    async def _discard(self, node_ids: Sequence[str]) -> None:
        """Kill these members and delete their data (a failed start)."""
        for node in node_ids:
            if node in self.members:
                await self.kill(node)
            spec = self.specs.pop(node, None)
            if spec is not None:
                shutil.rmtree(spec.data_dir, ignore_errors=True)

    def _spec(self, node: str, address: str, peers: dict[str, str], *, join: bool) -> MemberSpec:
        return MemberSpec(
            node, address, dict(peers), join, self.workdir / node, self.workdir / f"{node}.log"
        )

    async def spawn(self, spec: MemberSpec) -> MemberProcess:
        """Start a member from ``spec`` and wait until it serves.

        :raises MemberExitedError: if it exits or does not serve in time.
        """
        assert self._tasks is not None, "use `async with ProcessCluster(...)`"
        self.specs[spec.node_id] = spec
        if self.before_spawn is not None:
            await self.before_spawn(spec)
        member = await start_process(spec, self.program, self.secret, self._extra)
        self._tasks.start_soon(member.read_replies)
        self.members[spec.node_id] = member
        try:
            await member.wait_ready(self.start_timeout)
        except MemberExitedError:
            if spec.node_id in self.members:
                await self.kill(spec.node_id)
            raise
        return member

    async def kill(self, node_id: str) -> None:
        """SIGKILL a member (its data directory stays for a restart)."""
        member = self.members.pop(node_id)
        await member.kill()

    async def stop(self, node_id: str, grace: float = 5.0) -> None:
        """Stop a member cleanly (killed if it takes longer than ``grace`` seconds)."""
        member = self.members.pop(node_id)
        await member.stop(grace)

    async def stop_all(self, grace: float = 5.0) -> None:
        """Stop every running member, concurrently."""
        async with anyio.create_task_group() as tasks:
            for node in list(self.members):
                tasks.start_soon(self.stop, node, grace)

    async def restart(self, node_id: str) -> MemberProcess:
        """Start a stopped or killed member again from its data directory."""
        return await self.spawn(self.specs[node_id])

    async def add_member(self, node_id: str, *, via: str, timeout: float = 20.0) -> MemberProcess:
        """Start ``node_id`` with ``join`` and have member ``via`` add it; returns once it votes."""
        for attempt in range(1, 4):
            address = f"127.0.0.1:{free_port()}"
            peers = {n: self.specs[n].address for n in self.members}
            peers[node_id] = address
            try:
                member = await self.spawn(self._spec(node_id, address, peers, join=True))
                break
            except MemberExitedError:
                await self._discard([node_id])
                if attempt == 3:
                    raise
        await self.members[via].request(
            "add_member", node=node_id, address=address, timeout=timeout
        )
        return member

    async def remove_member(self, node_id: str, *, via: str, timeout: float = 20.0) -> None:
        """Have member ``via`` remove ``node_id``, then stop its process."""
        await self.members[via].request("remove_member", node=node_id, timeout=timeout)
        await self.stop(node_id, grace=2.0)

    async def statuses(self, among: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """The status of each listed running member that answers (default: every one)."""
        found: dict[str, dict[str, Any]] = {}
        for node in among if among is not None else list(self.members):
            member = self.members.get(node)
            if member is None:
                continue
            try:
                found[node] = await member.status()
            except MemberError:
                continue
        return found

    async def wait_for_leader(
        self,
        among: Sequence[str] | None = None,
        *,
        newer_than: str | None = None,
        timeout: float = 20.0,
    ) -> str:
        """The leader once it is one of ``among`` and every one of them agrees on it.

        :param newer_than: a leader that must have been replaced (e.g. the killed one).
        :raises TimeoutError: if that does not happen within ``timeout`` seconds.
        """
        wanted = list(among if among is not None else self.members)
        with anyio.move_on_after(timeout):
            while True:
                statuses = await self.statuses(wanted)
                leaders = {(s["leader"], s["term"]) for s in statuses.values()}
                if len(statuses) == len(wanted) and len(leaders) == 1:
                    ((leader, _term),) = leaders
                    current = statuses.get(leader, {}).get("role") == "leader"
                    if current and leader != newer_than:
                        return str(leader)
                await anyio.sleep(0.05)
        raise TimeoutError(f"no leader agreed on by {wanted} within {timeout:.0f}s")

    async def wait_caught_up(self, node_ids: Sequence[str], timeout: float = 20.0) -> int:
        """Wait until each member has applied everything the leader had committed; returns
        that commit index.

        :raises TimeoutError: if they do not within ``timeout`` seconds.
        """
        target, statuses = -1, {}
        with anyio.move_on_after(timeout):
            leader = await self.wait_for_leader()
            target = int((await self.members[leader].status())["commit_index"])
            while True:
                statuses = await self.statuses(node_ids)
                behind = [
                    n for n in node_ids if statuses.get(n, {}).get("applied_index", -1) < target
                ]
                if not behind:
                    return target
                await anyio.sleep(0.05)
        seen = {
            node: {key: statuses[node].get(key) for key in _CATCH_UP_FIELDS}
            if node in statuses
            else "no answer"
            for node in node_ids
        }
        raise TimeoutError(
            f"{list(node_ids)} did not all apply the leader's commit index {target} within "
            f"{timeout:.0f}s; last statuses: {seen}"
        )

    def describe(self, log_lines: int = 12) -> str:
        """Ports, pids, data directories and the tail of every member's log (for failures)."""
        lines = [f"work directory: {self.workdir}"]
        for node, spec in sorted(self.specs.items()):
            member = self.members.get(node)
            state = f"pid {member.pid}" if member is not None else "not running"
            lines.append(f"{node}: {spec.address} ({state}) data {spec.data_dir}")
            if spec.log_path.exists():
                tail = spec.log_path.read_text(errors="replace").splitlines()[-log_lines:]
                lines.extend(f"    {line}" for line in tail)
        return "\n".join(lines)
