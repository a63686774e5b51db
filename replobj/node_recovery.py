"""Disaster recovery for a stalled cluster: restart a survivor as the only voter.

Rule of this module: the one place where a :class:`~replobj.node.Node` deliberately gives
up a Raft guarantee (``Node(force_new_cluster=True)``, like etcd's
``--force-new-cluster``), and says loudly what that may have cost.
"""

from __future__ import annotations

import logging

from . import errors
from .raft import ProposalId, RaftNode

logger = logging.getLogger("replobj.node")


def force_new_cluster(raft: RaftNode, data_dir: object) -> ProposalId:
    """Make ``raft`` (just restored from its store) the sole voter of its configuration.

    Logs at WARNING what the new configuration is and at ERROR what may have been lost.

    :param raft: the core, restored and not yet driven.
    :param data_dir: the data directory, for messages.
    :raises ~replobj.errors.ConfigurationError: if the store holds no log or configuration
        (an empty or wrong data directory: there is nothing to recover from).
    """
    before = raft.status()
    forced = raft.force_new_cluster()
    if not isinstance(forced, ProposalId):
        raise errors.ConfigurationError(
            f"force_new_cluster=True for {raft.id!r} on data_dir={data_dir!s}: {forced.message}"
        )
    dropped = sorted(before.config.members - {raft.id})
    logger.warning(
        "%s: FORCED A NEW CLUSTER: %s is now the only voter (configuration entry %d in term "
        "%d), dropping %s; add the others back with add_member after restarting them on "
        "empty data directories with join=True",
        raft.id,
        raft.id,
        forced.index,
        forced.term,
        ", ".join(dropped) or "nobody",
    )
    logger.error(
        "%s: force_new_cluster keeps exactly this log: entries 1..%d (known committed up to "
        "%d; %d entries beyond that are committed now although the old cluster may never "
        "have committed them). Entries the other members acknowledged beyond index %d "
        "cannot be known and are lost; if another survivor holds a longer log, stop this "
        "node and force the new cluster there instead",
        raft.id,
        before.last_index,
        before.commit_index,
        before.last_index - before.commit_index,
        before.last_index,
    )
    return forced
