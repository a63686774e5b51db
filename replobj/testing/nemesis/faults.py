"""The nemesis: a seeded schedule of process faults against a :class:`ProcessCluster`.

One fault at a time, each healed before the next: SIGKILL then restart from the data
directory, SIGSTOP for longer than the election timeout then SIGCONT, removing a member
(the leader included) and adding a fresh one, or a kill and a pause of two members at
once. Whether a fault hits the leader or a follower, and the pauses between faults, come
from the seed; the moment each lands is real time.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio

from ...demo import MemberError, ProcessCluster
from .report import FaultEvent

__all__ = ["Nemesis"]


@dataclass(slots=True)
class Nemesis:
    """Injects faults until told to stop, and records each one.

    :param cluster: the cluster to hurt.
    :param rng: the seeded source of every choice.
    :param kinds: which fault kinds to draw from.
    :param election_timeout: the members' election timeout (pauses last longer).
    :param started: the ``time.monotonic()`` the fault times are relative to.
    """

    cluster: ProcessCluster
    rng: random.Random
    kinds: Sequence[str]
    election_timeout: float
    started: float
    events: list[FaultEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    paused: set[str] = field(default_factory=set)
    _fresh: int = 0

    def _now(self) -> float:
        return round(time.monotonic() - self.started, 2)

    async def run(self, until: float) -> None:
        """Inject faults until ``time.monotonic()`` passes ``until``."""
        while time.monotonic() + 1.0 < until:
            await anyio.sleep(self.rng.uniform(0.8, 1.8))
            kind = self.rng.choice(list(self.kinds))
            hit_leader = self.rng.random() < 0.5
            with anyio.CancelScope(shield=True):
                await self.inject(kind, hit_leader)

    async def _roles(self) -> tuple[str, list[str]]:
        awake = [node for node in self.cluster.members if node not in self.paused]
        leader = await self.cluster.wait_for_leader(awake, timeout=20.0)
        return leader, sorted(node for node in awake if node != leader)

    async def inject(self, kind: str, hit_leader: bool) -> None:
        """Inject one fault of ``kind`` on the leader or a follower and heal it; a fault that
        cannot be healed is added to :attr:`problems`."""
        try:
            leader, followers = await self._roles()
            if not followers:
                return
            role = "leader" if hit_leader else "follower"
            target = leader if hit_leader else self.rng.choice(followers)
            start = self._now()
            if kind == "kill":
                note = await self._kill_and_restart(target)
            elif kind == "pause":
                note = await self._pause(target)
            elif kind == "membership":
                target, note = await self._replace(target, leader)
            else:
                target, note = await self._kill_and_pause(target, leader, followers)
        except (TimeoutError, MemberError) as error:
            self.problems.append(f"{kind} fault at {self._now()} s: {error}")
            return
        self.events.append(FaultEvent(kind, target, role, start, self._now(), note))

    async def _kill_and_pause(
        self, victim: str, leader: str, followers: Sequence[str]
    ) -> tuple[str, str]:
        """Kill ``victim`` and pause another member at once: the majority is gone until
        one of them is back."""
        sleeper = self.rng.choice([node for node in [leader, *followers] if node != victim])
        notes: list[str] = []

        async def kill() -> None:
            notes.append(await self._kill_and_restart(victim))

        async def pause() -> None:
            notes.append(await self._pause(sleeper))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(kill)
            tasks.start_soon(pause)
        return f"kill {victim} + pause {sleeper}", "; ".join(filter(None, notes))

    async def _kill_and_restart(self, target: str) -> str:
        await self.cluster.kill(target)
        await anyio.sleep(self.rng.uniform(0.3, 1.5))
        try:
            await self.cluster.restart(target)
        except MemberError as error:
            self.problems.append(f"{target} did not restart after kill -9: {error}")
            return "restart failed"
        return ""

    async def _pause(self, target: str) -> str:
        pid = self.cluster.members[target].pid
        self.paused.add(target)
        os.kill(pid, signal.SIGSTOP)
        try:
            await anyio.sleep(self.election_timeout * self.rng.uniform(2.5, 5.0))
        finally:
            os.kill(pid, signal.SIGCONT)
            self.paused.discard(target)
        return ""

    def resume_all(self) -> None:
        """SIGCONT every paused member (used when a run is cancelled)."""
        for node in list(self.paused):
            member = self.cluster.members.get(node)
            if member is not None and member.process.returncode is None:
                os.kill(member.pid, signal.SIGCONT)
            self.paused.discard(node)

    async def _replace(self, target: str, leader: str) -> tuple[str, str]:
        notes: list[str] = []
        for _attempt in range(3):
            try:
                await self.cluster.remove_member(target, via=leader, timeout=10.0)
                break
            except MemberError as error:
                notes.append(f"remove: {error.kind}")
                await anyio.sleep(0.3)
                leader = (await self._roles())[0]
        self._fresh += 1
        fresh = f"n{3 + self._fresh}"
        for _attempt in range(3):
            try:
                leader = (await self._roles())[0]
                await self.cluster.add_member(fresh, via=leader, timeout=15.0)
                break
            except MemberError as error:
                notes.append(f"add: {error.kind}")
                await anyio.sleep(0.3)
        await self.reconcile()
        return f"{target}->{fresh}", "; ".join(notes)

    async def reconcile(self) -> None:
        """Stop running members that are not voters (a membership change that went through
        although its caller was told otherwise) so they are not expected to catch up."""
        leader, _followers = await self._roles()
        voters = set((await self.cluster.members[leader].status())["voters"])
        for node in sorted(self.cluster.members):
            if node not in voters:
                await self.cluster.stop(node, grace=2.0)
