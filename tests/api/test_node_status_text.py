"""``print(node.status())`` shows an aligned block a person can read, not a dataclass."""

from __future__ import annotations

import dataclasses
from typing import Any

from replobj.node_status import NodeStatus, PeerLag
from replobj.raft.status import ElectionStall

BASE = NodeStatus(
    id="a",
    role="leader",
    term=3,
    leader="a",
    voters=("a", "b", "carol"),
    learners=(),
    commit_index=12,
    applied_index=11,
    last_index=13,
    snapshot_index=5,
    peers={"carol": PeerLag(9, 4, "probe"), "b": PeerLag(13, 0, "replicate")},
    cluster_id="c0ffee",
)


def status(**changes: Any) -> NodeStatus:
    return dataclasses.replace(BASE, **changes)


def test_the_block_names_every_field_aligned() -> None:
    text = str(status())
    assert text.splitlines() == [
        "member      a",
        "role        leader",
        "term        3",
        "leader      a",
        "cluster     c0ffee",
        "commit      12",
        "applied     11",
        "last index  13",
        "snapshot    5",
        "voters      a, b, carol",
        "learners    (none)",
        "peer b      match 13, lag 0 (replicate)",
        "peer carol  match 9, lag 4 (probe)",
    ]


def test_repr_stays_the_dataclass_repr() -> None:
    assert repr(status()).startswith("NodeStatus(id='a', role='leader', term=3,")


def test_a_follower_without_leader_or_peers() -> None:
    text = str(status(role="candidate", leader=None, peers={}, cluster_id=""))
    assert "leader      (none known)" in text.splitlines()
    assert "cluster     (not yet known)" in text.splitlines()
    assert "peer" not in text


def test_problems_are_shown_only_when_set() -> None:
    assert "stalled" not in str(status())
    assert "removed" not in str(status())
    stall = ElectionStall(4, {"b": 0}, {"a": 13})
    text = str(status(removed=True, role="removed", stalled=stall, snapshot_error="boom"))
    lines = text.splitlines()
    label = len("snapshot error  ")
    assert lines[-3] == "removed".ljust(label) + (
        "yes: it no longer receives the log; stop it or add it back"
    )
    assert lines[-2] == "stalled".ljust(label) + stall.describe()
    assert lines[-1] == "snapshot error  boom"
    assert all(line[label - 2 : label] == "  " for line in lines)  # one column of values
