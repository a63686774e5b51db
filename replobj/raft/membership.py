"""Membership arithmetic (thesis §4): the next configuration for each kind of change.

Pure functions from a configuration to the next one, or to the reason the change is
invalid. Whether a change may start *now* (one at a time, leader ready) is the node's
business; this module only knows what a valid next configuration looks like.
"""

from __future__ import annotations

from .types import ClusterConfig, NodeId


def adding(config: ClusterConfig, node: NodeId, *, promote: bool) -> ClusterConfig | str:
    """Add ``node`` as a learner (optionally marked for automatic promotion).

    Adding a learner that is already a member, with ``promote``, marks it for promotion
    (a non-voting member becomes a voter once caught up).
    """
    if node in config.learners and promote and node not in config.auto_promote:
        return ClusterConfig(
            voters=config.voters,
            learners=config.learners,
            old_voters=config.old_voters,
            auto_promote=config.auto_promote | {node},
        )
    if node in config.members:
        return f"{node!r} is already a member"
    return ClusterConfig(
        voters=config.voters,
        learners=config.learners | {node},
        auto_promote=config.auto_promote | ({node} if promote else frozenset()),
    )


def removing(config: ClusterConfig, node: NodeId) -> ClusterConfig | str:
    """Remove a learner directly, or a voter by entering joint consensus C_old,new."""
    if node in config.learners:
        return ClusterConfig(
            voters=config.voters,
            learners=config.learners - {node},
            auto_promote=config.auto_promote - {node},
        )
    if node not in config.voters:
        return f"{node!r} is not a member"
    if config.voters == {node}:
        return f"{node!r} is the last voter; add another voter before removing it"
    return ClusterConfig(
        voters=config.voters - {node},
        learners=config.learners,
        old_voters=config.voters,
        auto_promote=config.auto_promote,
    )


def promoting(config: ClusterConfig, learner: NodeId) -> ClusterConfig:
    """Enter joint consensus with ``learner`` as a new voter."""
    return ClusterConfig(
        voters=config.voters | {learner},
        learners=config.learners - {learner},
        old_voters=config.voters,
        auto_promote=config.auto_promote - {learner},
    )


def leaving_joint(config: ClusterConfig) -> ClusterConfig:
    """C_new: the joint configuration without its old voters (thesis §4.3)."""
    return ClusterConfig(config.voters, config.learners, None, config.auto_promote)
