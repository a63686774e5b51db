"""The network fault plans: who is cut from whom, for every kind and cluster size."""

from __future__ import annotations

import random

import pytest

from replobj.testing.nemesis.network import NET_FAULT_KINDS, plan_net_fault


def members(size: int) -> list[str]:
    return [f"n{number}" for number in range(1, size + 1)]


def can_send(plan_kind: str, size: int, seed: int) -> tuple[set[tuple[str, str]], str]:
    """Every (sender, receiver) link that still carries messages, and the target."""
    rng = random.Random(seed)
    nodes = members(size)
    target = rng.choice(nodes)
    fault = plan_net_fault(plan_kind, target, nodes, rng, heartbeat=0.05)
    links = {
        (sender, receiver)
        for sender in nodes
        for receiver in nodes
        if sender != receiver
        and receiver not in fault.block_to.get(sender, ())
        and sender not in fault.block_from.get(receiver, ())
    }
    return links, target


def groups(links: set[tuple[str, str]], nodes: list[str]) -> list[set[str]]:
    """The connected groups, following links both ways."""
    seen: set[str] = set()
    found = []
    for start in nodes:
        if start in seen:
            continue
        group, todo = {start}, [start]
        while todo:
            node = todo.pop()
            for a, b in links:
                if a == node and b not in group:
                    group.add(b)
                    todo.append(b)
        seen |= group
        found.append(group)
    return found


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("seed", range(20))
def test_a_partition_puts_the_target_in_a_minority(size: int, seed: int) -> None:
    links, target = can_send("partition", size, seed)
    split = groups(links, members(size))
    assert len(split) == 2
    minority = next(group for group in split if target in group)
    assert len(minority) <= (size - 1) // 2
    assert all((b, a) in links for a, b in links), "a partition cuts both directions"


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("seed", range(20))
def test_a_bridge_node_hears_both_halves_which_do_not_hear_each_other(size: int, seed: int) -> None:
    links, target = can_send("bridge", size, seed)
    others = [node for node in members(size) if node != target]
    assert all((target, node) in links and (node, target) in links for node in others)
    without_bridge = {(a, b) for a, b in links if target not in (a, b)}
    assert len(groups(without_bridge, others)) == 2


@pytest.mark.parametrize("seed", range(20))
def test_a_one_way_fault_cuts_exactly_one_direction_of_the_targets_links(seed: int) -> None:
    links, target = can_send("one-way", 3, seed)
    others = [node for node in members(3) if node != target]
    outgoing = [(target, node) in links for node in others]
    incoming = [(node, target) in links for node in others]
    assert sorted([outgoing, incoming]) == [[False, False], [True, True]]
    assert (others[0], others[1]) in links
    assert (others[1], others[0]) in links


def test_loss_and_delay_touch_every_link_and_block_none() -> None:
    rng = random.Random(7)
    loss = plan_net_fault("loss", "n1", members(3), rng, heartbeat=0.05)
    delay = plan_net_fault("delay", "n1", members(3), rng, heartbeat=0.05)
    assert 0.1 <= loss.drop <= 0.4
    assert not loss.block_to
    assert not loss.block_from
    assert 0 < delay.delay[1] <= 0.15
    assert delay.drop == 0
    assert loss.request_for("n2")["drop"] == loss.drop


def test_every_kind_is_planned_and_an_unknown_one_is_refused() -> None:
    for kind in NET_FAULT_KINDS:
        assert plan_net_fault(kind, "n1", members(3), random.Random(1), 0.05).description
    with pytest.raises(ValueError, match="unknown network fault"):
        plan_net_fault("flood", "n1", members(3), random.Random(1), 0.05)
