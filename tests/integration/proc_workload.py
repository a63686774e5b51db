"""Helpers for the process tests: a cluster of member processes and an append workload.

Members are ``python -m replobj.demo member`` processes with the demo's ``Store``
attached; clients append unique strings to its journal, so a lost or duplicated
command shows up in the journal compared with the list of acknowledged appends.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from replobj.demo import STORE, MemberError, ProcessCluster

MEMBER_PROGRAM = [sys.executable, "-m", "replobj.demo", "member"]


@asynccontextmanager
async def process_cluster(workdir: Path, backend: str) -> AsyncIterator[ProcessCluster]:
    """A :class:`ProcessCluster` of demo members whose ports, pids, data directories and
    log tails are printed when the block ends (pytest shows them if the test failed)."""
    print(f"member processes on {backend}, data and logs under {workdir}")
    cluster = ProcessCluster(workdir, MEMBER_PROGRAM, backend=backend, election_timeout=0.4)
    try:
        async with cluster:
            yield cluster
    finally:
        print(cluster.describe())


class AppendWorkload:
    """Clients that append unique values through chosen members.

    :param cluster: where to send the appends.
    """

    def __init__(self, cluster: ProcessCluster) -> None:
        self.cluster = cluster
        self.acknowledged: list[str] = []
        self.unanswered: list[str] = []
        self._sent = 0
        self._progress = anyio.Event()

    async def append(self, via: str, client: int) -> bool:
        """Append one new value through ``via``; ``False`` once that member is gone."""
        member = self.cluster.members.get(via)
        if member is None:
            return False
        self._sent += 1
        value = f"{via}/{client}/{self._sent}"
        try:
            await member.call(STORE, "append", value)
        except MemberError:
            self.unanswered.append(value)
            return not member.exited.is_set()
        self.acknowledged.append(value)
        self._progress.set()
        self._progress = anyio.Event()
        return True

    async def run(self, via: Sequence[str], stop: anyio.Event, clients: int = 2) -> None:
        """Keep ``clients`` concurrent clients per member appending until ``stop`` is set
        (a client stops early when its member is gone)."""

        async def client(member: str, number: int) -> None:
            while not stop.is_set() and await self.append(member, number):
                pass

        async with anyio.create_task_group() as tasks:
            for member in via:
                for number in range(clients):
                    tasks.start_soon(client, member, number)

    async def wait_acknowledged(self, count: int, timeout: float = 20.0) -> None:
        """Wait until at least ``count`` appends in total were acknowledged."""
        with anyio.fail_after(timeout):
            while len(self.acknowledged) < count:
                await self._progress.wait()

    async def assert_exactly_once(self, nodes: Sequence[str]) -> list[str]:
        """Every acknowledged append is applied exactly once, in the same order, on every
        listed member (read with linearizable reads); returns the journal."""
        journals = {node: await self.cluster.members[node].read(STORE, "entries") for node in nodes}
        reference = journals[nodes[0]]
        for node, journal in journals.items():
            assert journal == reference, f"{node}'s journal differs from {nodes[0]}'s"
        assert len(set(reference)) == len(reference), "a command was applied twice"
        missing = set(self.acknowledged) - set(reference)
        assert not missing, f"acknowledged appends lost: {sorted(missing)}"
        unexpected = set(reference) - set(self.acknowledged) - set(self.unanswered)
        assert not unexpected, f"appends nobody sent: {sorted(unexpected)}"
        return list(reference)
