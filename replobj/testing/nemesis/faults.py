"""The nemesis: a seeded schedule of process faults against a :class:`ProcessCluster`.

One fault at a time, each healed before the next: SIGKILL then restart from the data
directory, SIGSTOP for longer than the election timeout then SIGCONT, a network fault
(partition, bridge, one-way link, loss, delay: see :mod:`.network`), replacing a member
(the leader included) by a fresh one, or two of these at once; on request (``wipe``),
SIGKILL, an emptied data directory and a restart under the same id with ``join=True``.
Whether a fault hits the leader or a follower, and the pauses between faults, come from
the seed; the moment each lands is real time.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from ...demo import MemberError, ProcessCluster
from .disk import ExpectedCrash, fail_disk_and_restart
from .network import NET_FAULT_KINDS, NetFault, plan_net_fault
from .power import PowerRig
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
    :param founders: how many members the cluster started with (fresh ones are numbered on).
    :param power: the members' power-loss mounts (needed for ``power``, ``power-all`` and
        ``disk``).
    """

    cluster: ProcessCluster
    rng: random.Random
    kinds: Sequence[str]
    election_timeout: float
    started: float
    founders: int = 3
    power: PowerRig | None = None
    events: list[FaultEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    paused: set[str] = field(default_factory=set)
    expected_crashes: list[ExpectedCrash] = field(default_factory=list)
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
            elif kind in NET_FAULT_KINDS:
                note = await self._network(kind, target)
            elif kind in ("power", "power-all"):
                target, note = await self._power_cut(kind, target, [leader, *followers])
            elif kind == "disk":
                note = await self._disk(target)
            elif kind == "membership":
                target, note = await self._replace(target, leader)
            elif kind == "wipe":
                note = await self._wipe_and_rejoin(target)
            else:
                target, note = await self._combined(target, leader, followers)
        except (TimeoutError, MemberError) as error:
            self.problems.append(f"{kind} fault at {self._now()} s: {error}")
            return
        self.events.append(FaultEvent(kind, target, role, start, self._now(), note))

    async def _combined(
        self, target: str, leader: str, followers: Sequence[str]
    ) -> tuple[str, str]:
        variant = self.rng.choice(["kill+pause", "partition+kill", "replace+loss"])
        if variant == "kill+pause":
            return await self._kill_and_pause(target, leader, followers)
        if variant == "partition+kill":
            return await self._partition_and_kill(target)
        fault = plan_net_fault("loss", target, sorted(self.cluster.members), self.rng, 0.05)
        await self._apply_net(fault)
        try:
            replaced, note = await self._replace(target, leader)
        finally:
            await self.heal_network()
        return f"{replaced} over {fault.description}", note

    async def _partition_and_kill(self, target: str) -> tuple[str, str]:
        """Cut ``target`` off and kill a member on the other side: no side has a majority
        until the killed member is back."""
        fault = plan_net_fault("partition", target, sorted(self.cluster.members), self.rng, 0.05)
        blocked = fault.block_to.get(target, frozenset())
        victim = self.rng.choice(sorted(blocked)) if blocked else target
        await self._apply_net(fault)
        try:
            note = await self._kill_and_restart(victim)
            await self._hold()
        finally:
            await self.heal_network()
        return f"{fault.description} + kill {victim}", note

    async def _network(self, kind: str, target: str) -> str:
        members = sorted(self.cluster.members)
        fault = plan_net_fault(kind, target, members, self.rng, self.election_timeout / 8)
        await self._apply_net(fault)
        try:
            await self._hold()
        finally:
            await self.heal_network()
        return fault.description

    async def _hold(self) -> None:
        """Keep a fault on for several election timeouts."""
        await anyio.sleep(self.election_timeout * self.rng.uniform(3.0, 8.0))

    async def _apply_net(self, fault: NetFault) -> None:
        async with anyio.create_task_group() as tasks:
            for node, member in list(self.cluster.members.items()):
                tasks.start_soon(self._net_request, node, member.net, fault.request_for(node))

    async def _net_request(self, node: str, send: Any, request: dict[str, Any]) -> None:
        if node in self.paused:
            return
        try:
            await send(**request)
        except MemberError as error:
            self.problems.append(f"network fault not applied on {node}: {error}")

    async def heal_network(self) -> None:
        """Clear every running member's network faults."""
        async with anyio.create_task_group() as tasks:
            for node, member in list(self.cluster.members.items()):
                tasks.start_soon(self._net_request, node, member.net, {})

    async def _power_cut(self, kind: str, target: str, awake: Sequence[str]) -> tuple[str, str]:
        """Cut the power of ``target`` (and, in a 5-member cluster, maybe one more: still a
        minority) or, for ``power-all``, of every member; then restart them."""
        if self.power is None:
            raise ValueError("power faults need the members' data on power-loss mounts")
        if kind == "power-all":
            victims = sorted(self.cluster.members)
        else:
            others = sorted(set(awake) - {target})
            extra = self.rng.randint(0, max(0, (len(self.cluster.members) - 1) // 2 - 1))
            victims = sorted([target, *self.rng.sample(others, min(extra, len(others)))])
        for node in victims:
            await self.cluster.kill(node)
        lost = 0
        for node in victims:
            lost += (await self.power.cut(node)).dirty_bytes
        await anyio.sleep(self.rng.uniform(0.3, 1.5))
        notes = [f"{lost} unsynced bytes lost"]
        for node in victims:
            try:
                await self.cluster.restart(node)
            except MemberError as error:
                self.problems.append(f"{node} did not restart after a power cut: {error}")
                notes.append(f"{node} restart failed")
        label = "all" if kind == "power-all" else " ".join(victims)
        return label, "; ".join(notes)

    async def _disk(self, target: str) -> str:
        """Fail ``target``'s fsyncs until it stops, then heal its disk and restart it."""
        if self.power is None:
            raise ValueError("disk faults need the members' data on power-loss mounts")
        result = await fail_disk_and_restart(
            self.cluster, self.power, target, self.rng, self.election_timeout
        )
        self.problems.extend(result.problems)
        if result.crash is not None:
            self.expected_crashes.append(result.crash)
        return result.note

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

    async def _wipe_and_rejoin(self, target: str) -> str:
        """SIGKILL ``target``, delete everything in its data directory (it may be a mount
        point), restart it under its id with ``join=True``, and wait until it has caught up.

        Waiting is the documented operator rule (docs/operations.md): wipe one member at a
        time. Two members that both rejoined empty before catching up withhold their votes
        and leave no quorum; the cluster then reports a stall instead of electing
        (tests/integration/test_stalled_cluster.py covers that case on purpose).
        """
        await self.cluster.kill(target)
        spec = self.cluster.specs[target]
        for child in spec.data_dir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        await anyio.sleep(self.rng.uniform(0.3, 1.5))
        try:
            await self.cluster.spawn(dataclasses.replace(spec, join=True))
        except MemberError as error:
            self.problems.append(f"{target} did not restart on a wiped directory: {error}")
            return "restart failed"
        index = await self.cluster.wait_caught_up([target], timeout=30.0)
        return f"caught up to {index}"

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
        fresh = f"n{self.founders + self._fresh}"
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
