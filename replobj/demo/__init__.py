"""``python -m replobj demo``: a real 3-process cluster on loopback, with a leader crash.

:func:`run_demo` starts three members as OS processes (``python -m replobj.demo
member ...``, see :mod:`replobj.demo.member`) with RocksDB data in a temporary
directory, writes through every member from several clients, kills the leader with
SIGKILL, checks that a new leader took over and that no acknowledged write was lost
or applied twice, restarts the killed member from its data directory, adds a fourth
member, removes one, and prints a status table. It returns 0 only if every check held.

The machinery is reusable: :mod:`~replobj.demo.member` (one member under JSON-lines
control), :mod:`~replobj.demo.process` (the parent's handle on one member) and
:mod:`~replobj.demo.cluster` (:class:`ProcessCluster`); ``examples/`` and the process
integration tests are built on them and :func:`run_scenario`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from ..replicated import query, replicated
from ..secret import new_secret
from .cluster import ProcessCluster
from .member import serve_member
from .process import MemberError, status_table

__all__ = [
    "STORE",
    "DemoCheckFailed",
    "MemberError",
    "ProcessCluster",
    "Scenario",
    "Store",
    "check",
    "main",
    "run_demo",
    "run_scenario",
    "say",
    "serve_member",
]

STORE = "store"
"""The name the demo's :class:`Store` is attached under on every member."""


@replicated(name="replobj.demo.Store")
class Store:
    """A key-value map plus an append-only journal (duplicates or losses show in it)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.journal: list[Any] = []

    def put(self, key: str, value: Any) -> Any:
        """Set ``key`` to ``value``; returns the previous value (``None`` if there was none)."""
        previous = self.data.get(key)
        self.data[key] = value
        return previous

    def delete(self, key: str) -> bool:
        """Remove ``key``; returns whether it was there."""
        return self.data.pop(key, None) is not None

    def append(self, item: Any) -> int:
        """Append ``item`` to the journal; returns the journal's new length."""
        self.journal.append(item)
        return len(self.journal)

    @query
    def get(self, key: str) -> Any:
        """The value of ``key``, or ``None``."""
        return self.data.get(key)

    @query
    def items(self) -> dict[str, Any]:
        """A copy of the whole map."""
        return dict(self.data)

    @query
    def entries(self) -> list[Any]:
        """A copy of the journal, in apply order."""
        return list(self.journal)


class DemoCheckFailed(Exception):
    """One of the demo's checks did not hold (the message says which)."""


def say(text: str) -> None:
    """Print one line of the demo's narration at once."""
    print(text, flush=True)


def check(condition: bool, what: str) -> None:
    """Print ``ok: what`` if ``condition`` holds.

    :raises DemoCheckFailed: if it does not.
    """
    if not condition:
        raise DemoCheckFailed(what)
    say(f"    ok: {what}")


class _Writers:
    """Clients that append unique items through chosen members and record acknowledgements."""

    def __init__(self, cluster: ProcessCluster) -> None:
        self.cluster = cluster
        self.acknowledged: list[str] = []
        self.failed = 0
        self._counter = 0

    async def write(self, via: str, client: int) -> bool:
        """Append one unique item through member ``via``; ``False`` once it is gone."""
        member = self.cluster.members.get(via)
        if member is None:
            return False
        self._counter += 1
        item = f"{via}-{client}-{self._counter}"
        try:
            await member.call(STORE, "append", item)
        except MemberError:
            self.failed += 1
            return not member.exited.is_set()
        self.acknowledged.append(item)
        return True

    async def burst(self, via: Sequence[str], per_client: int, clients: int = 3) -> None:
        async def client(member: str, number: int) -> None:
            for _ in range(per_client):
                await self.write(member, number)

        async with anyio.create_task_group() as tasks:
            for member in via:
                for number in range(clients):
                    tasks.start_soon(client, member, number)

    async def stream_until(self, via: Sequence[str], stop: anyio.Event) -> None:
        async def client(member: str, number: int) -> None:
            while not stop.is_set() and await self.write(member, number):
                pass

        async with anyio.create_task_group() as tasks:
            for member in via:
                for number in range(2):
                    tasks.start_soon(client, member, number)


async def _verify(cluster: ProcessCluster, acknowledged: list[str], on: Sequence[str]) -> None:
    journals = {node: await cluster.members[node].read(STORE, "entries") for node in on}
    reference = journals[on[0]]
    check(
        all(journal == reference for journal in journals.values()),
        f"{', '.join(on)} hold identical journals ({len(reference)} entries, linearizable reads)",
    )
    present = set(reference)
    missing = [item for item in acknowledged if item not in present]
    check(not missing, f"all {len(acknowledged)} acknowledged writes are present")
    check(len(present) == len(reference), "no write was applied twice")


Scenario = Callable[[ProcessCluster], Awaitable[None]]
"""An async function that drives a started-empty :class:`ProcessCluster`."""


async def _run_scenario(
    scenario: Scenario, workdir: Path, program: Sequence[str], backend: str
) -> None:
    started = time.monotonic()
    secret = new_secret()
    async with ProcessCluster(workdir, program, backend=backend, secret=secret) as cluster:
        try:
            await scenario(cluster)
        except BaseException:
            say("state of the cluster at the failure:")
            say(cluster.describe())
            raise
    say(f"all checks passed in {time.monotonic() - started:.1f} s")


def run_scenario(
    scenario: Scenario,
    program: Sequence[str],
    *,
    title: str,
    keep: bool = False,
    backend: str = "asyncio",
) -> int:
    """Run ``scenario`` on a fresh :class:`ProcessCluster` in a temporary directory.

    Used by the demo and the examples. Returns 0 if it completed, 1 (after printing
    why, the members' addresses and log tails) if it raised, 130 if interrupted.

    :param scenario: starts members and checks what it wants (:func:`check`).
    :param program: the command that runs one member.
    :param title: printed first.
    :param keep: keep the temporary directory (data and logs) even on success.
    :param backend: the anyio backend of the scenario and of the members.
    """
    workdir = Path(tempfile.mkdtemp(prefix="replobj-"))
    say(f"{title}; data and logs under {workdir}")
    try:
        anyio.run(_run_scenario, scenario, workdir, program, backend, backend=backend)
    except KeyboardInterrupt:
        say(f"interrupted; data and logs kept in {workdir}")
        return 130
    except Exception as exc:  # any failure is reported and turns into exit status 1
        say(f"FAILED: {type(exc).__name__}: {exc}")
        say(f"data and logs kept in {workdir}")
        return 1
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


async def _steps(cluster: ProcessCluster) -> None:
    say("[1] starting members a, b, c as OS processes")
    await cluster.start(["a", "b", "c"])
    for node, member in cluster.members.items():
        spec = member.spec
        say(f"    {node}: pid {member.pid}, listening on {spec.address}, data {spec.data_dir}")
    leader = await cluster.wait_for_leader()
    say(f"    leader elected: {leader}")

    writers = _Writers(cluster)
    say("[2] writing through every member: 3 clients per member, 5 appends each")
    await writers.burst(["a", "b", "c"], per_client=5)
    say(f"    {len(writers.acknowledged)} appends acknowledged")
    await cluster.members["a"].call(STORE, "put", "greeting", "hello")

    survivors = [n for n in ("a", "b", "c") if n != leader]
    say(f"[3] kill -9 the leader {leader} while clients keep writing through every member")
    stop = anyio.Event()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(writers.stream_until, ["a", "b", "c"], stop)
        await writers.burst(survivors, per_client=2)
        killed_at = time.monotonic()
        await cluster.kill(leader)
        new_leader = await cluster.wait_for_leader(among=survivors, newer_than=leader)
        elapsed = time.monotonic() - killed_at
        say(f"    new leader: {new_leader} ({elapsed:.1f} s after the kill)")
        await writers.burst(survivors, per_client=3)
        stop.set()
    check(new_leader in survivors, f"a surviving member ({new_leader}) leads")
    say(
        f"    {len(writers.acknowledged)} appends acknowledged in total; "
        f"{writers.failed} got no answer (sent to {leader} as it died: each may or may not "
        "have applied, but never twice)"
    )

    say("[4] checking every acknowledged write on the survivors")
    await _verify(cluster, writers.acknowledged, survivors)
    value = await cluster.members[survivors[0]].read(STORE, "get", "greeting")
    check(value == "hello", "the key written before the crash reads back")

    say(f"[5] restarting {leader} from its data directory")
    restarted = await cluster.restart(leader)
    index = await cluster.wait_caught_up([leader])
    say(f"    {leader} is back (pid {restarted.pid}) and has applied the log up to index {index}")
    await _verify(cluster, writers.acknowledged, ["a", "b", "c"])

    say("[6] adding member d at runtime (it joins as a learner, then votes)")
    joined = await cluster.add_member("d", via=survivors[0])
    say(f"    d (pid {joined.pid}, {joined.spec.address}) is a voter")
    await writers.burst(["d"], per_client=2)
    await _verify(cluster, writers.acknowledged, ["a", "b", "c", "d"])

    removed = await cluster.wait_for_leader()
    say(f"[7] removing member {removed} (the current leader) at runtime")
    remaining = [n for n in ("a", "b", "c", "d") if n != removed]
    await cluster.remove_member(removed, via=remaining[-1])
    successor = await cluster.wait_for_leader(among=remaining)
    check(successor != removed, f"leadership moved from {removed} to {successor}")
    status = await cluster.members[successor].status()
    check(
        sorted(status["voters"]) == remaining,
        f"the voters are now {', '.join(remaining)}",
    )
    await writers.burst(remaining, per_client=1)
    await _verify(cluster, writers.acknowledged, remaining)

    say("[8] status of every member")
    await cluster.wait_caught_up(remaining)
    rows = [await cluster.members[node].status() for node in remaining]
    say(status_table(rows))


def member_program() -> list[str]:
    """The command that starts one demo member (arguments follow)."""
    return [sys.executable, "-m", "replobj.demo", "member"]


def run_demo(*, keep: bool = False, backend: str = "asyncio") -> int:
    """Run the whole demo; returns 0 if every check held, 1 otherwise.

    :param keep: keep the temporary directory (data and logs) for inspection.
    :param backend: the anyio backend of the demo and of its members.
    """
    title = "replobj demo: a cluster of OS processes on 127.0.0.1 with RocksDB storage"
    return run_scenario(_steps, member_program(), title=title, keep=keep, backend=backend)


def main(argv: list[str] | None = None) -> int:
    """``python -m replobj.demo [--keep] [--trio]``: the demo; ``... member ARGS``: one member."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "member":
        return serve_member({STORE: Store}, args[1:])
    backend = "trio" if "--trio" in args else "asyncio"
    return run_demo(keep="--keep" in args, backend=backend)


if __name__ == "__main__":
    sys.exit(main())
