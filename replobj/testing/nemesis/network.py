"""Network faults of a nemesis run: who stops hearing whom, and how lossy or slow links get.

A :class:`NetFault` says, for every member, which peers it stops sending to and which it
stops hearing from, plus loss, duplication and delay rates for every link. The members
apply it through their :class:`~replobj.transport.FaultyTransport` (the ``net``
operation of a member started with ``--net-faults``). The plans are pure functions of the
members and a random generator, so a seed replays them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NET_FAULT_KINDS", "NetFault", "plan_net_fault"]

NET_FAULT_KINDS = ("partition", "bridge", "one-way", "loss", "delay")
"""``partition``: the members split in two (the target in the minority); ``bridge``: two
halves that only the target hears both of; ``one-way``: the target's messages to everyone
(or everyone's to it) are lost while the other direction works; ``loss``: every link drops
and duplicates messages; ``delay``: every message waits (and so reorders)."""


@dataclass(frozen=True, slots=True)
class NetFault:
    """One network fault, as each member applies it.

    :param description: what it is, for the report (e.g. ``"n1 | n2 n3"``).
    :param block_to: member → peers it stops sending to.
    :param block_from: member → peers it stops hearing from.
    :param drop: probability each message is lost (every member).
    :param duplicate: probability each message is sent twice (every member).
    :param delay: each message waits uniformly within this range of seconds (every member).
    """

    description: str
    block_to: Mapping[str, frozenset[str]] = field(default_factory=dict)
    block_from: Mapping[str, frozenset[str]] = field(default_factory=dict)
    drop: float = 0.0
    duplicate: float = 0.0
    delay: tuple[float, float] = (0.0, 0.0)

    def request_for(self, member: str) -> dict[str, Any]:
        """The ``net`` request fields for ``member``."""
        return {
            "block_to": sorted(self.block_to.get(member, ())),
            "block_from": sorted(self.block_from.get(member, ())),
            "drop": self.drop,
            "duplicate": self.duplicate,
            "delay": list(self.delay),
        }


def _split(groups: Sequence[frozenset[str]]) -> dict[str, frozenset[str]]:
    """Every member blocks every member outside its own group (both directions)."""
    everyone = frozenset().union(*groups)
    return {member: everyone - group for group in groups for member in group}


def _names(members: Iterable[str]) -> str:
    return " ".join(sorted(members))


def plan_net_fault(
    kind: str, target: str, members: Sequence[str], rng: random.Random, heartbeat: float
) -> NetFault:
    """The fault of ``kind`` centred on ``target`` among ``members``.

    :param kind: one of :data:`NET_FAULT_KINDS`.
    :param target: the member in the minority, the bridge, or the one-way end.
    :param members: every running member (``target`` included).
    :param rng: the seeded source of the choices.
    :param heartbeat: the members' heartbeat interval (delays are sized against it).
    :raises ValueError: for an unknown kind.
    """
    others = sorted(set(members) - {target})
    if kind == "partition":
        minority_size = rng.randint(1, max(1, (len(members) - 1) // 2))
        minority = frozenset([target, *rng.sample(others, minority_size - 1)])
        majority = frozenset(members) - minority
        blocked = _split([minority, majority])
        return NetFault(f"{_names(minority)} | {_names(majority)}", blocked, blocked)
    if kind == "bridge":
        shuffled = rng.sample(others, len(others))
        left, right = frozenset(shuffled[::2]), frozenset(shuffled[1::2])
        blocked = _split([left, right])
        return NetFault(f"{_names(left)} <{target}> {_names(right)}", blocked, blocked)
    if kind == "one-way":
        if rng.random() < 0.5:
            outgoing = {target: frozenset(others)}
            return NetFault(f"{target} -x-> {_names(others)}", block_to=outgoing)
        incoming = {target: frozenset(others)}
        return NetFault(f"{_names(others)} -x-> {target}", block_from=incoming)
    if kind == "loss":
        drop = round(rng.uniform(0.1, 0.4), 2)
        duplicate = round(rng.uniform(0.0, 0.1), 2)
        description = f"drop {drop:.0%}, duplicate {duplicate:.0%}"
        return NetFault(description, drop=drop, duplicate=duplicate)
    if kind == "delay":
        high = round(heartbeat * rng.uniform(0.5, 3.0), 3)
        return NetFault(f"delay 0-{high * 1000:.0f} ms", delay=(0.0, high))
    raise ValueError(f"unknown network fault {kind!r}; choose from {NET_FAULT_KINDS}")
