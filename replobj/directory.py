"""The cluster directory: a replicated object every node attaches under ``__cluster__``.

It holds the cluster's id, the address of every member and the membership the operators
asked for.
Because it lives in the log like any other object, a request made on any node reaches
the leader, survives leader changes and is part of snapshots; the leader's runtime
then reconciles the Raft configuration toward it, one change at a time
(see :meth:`replobj.node.Node.add_member`).

The callers check ids and addresses before proposing; the directory checks them again
where they are applied, because an entry may come from an older version or be forged:
a value no member can use is refused (logged at ERROR, the state left unchanged) on
every member alike, so replicated data can never crash a node.
"""

from __future__ import annotations

import logging
from typing import Any

from .errors import InvalidMemberError
from .node_checks import member_problem
from .replicated import query, replicated

logger = logging.getLogger("replobj")

DIRECTORY_NAME = "__cluster__"
"""The name the directory is attached under on every node."""


@replicated(name="replobj.ClusterDirectory")
class ClusterDirectory:
    """Member addresses and membership requests, replicated through the log.

    It starts empty on every node (founders and joiners alike, so every replica applies
    the same commands to the same state); the first leader registers the founders'
    addresses with :meth:`register`.
    """

    def __init__(self) -> None:
        self.cluster_id = ""
        self.addresses: dict[str, str] = {}
        self.removed: set[str] = set()
        self.non_voters: set[str] = set()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore from a snapshot (one taken before ``non_voters`` or ``cluster_id``
        existed has none)."""
        self.__dict__.clear()
        self.__dict__.update(state)
        self.__dict__.setdefault("non_voters", set())
        for node_id, address in list(self.addresses.items()):
            if _refused(node_id, address, "in the snapshot") is not None:
                del self.addresses[node_id]
        self.__dict__.setdefault("cluster_id", "")

    def set_cluster_id(self, cluster_id: str) -> None:
        """Fix the cluster's id: the first one applied wins, later ones are ignored.

        Founders bootstrap independently, so they agree on an id through the log: every
        leader that finds none proposes one, and every replica keeps the first applied.
        """
        if not self.cluster_id:
            self.cluster_id = str(cluster_id)

    def register(self, addresses: dict[str, str]) -> None:
        """Record addresses of current members that the directory does not know yet."""
        for node_id, address in addresses.items():
            if _refused(node_id, address, "registered") is None:
                self.addresses.setdefault(node_id, address)

    def add_member(self, node_id: str, address: str, voter: bool = True) -> None:
        """Ask for ``node_id`` (reachable at ``address``) to join as a voter, or as a
        non-voting member; asking again with ``voter`` promotes a non-voting member.

        :raises ~replobj.errors.InvalidMemberError: if no member could use the id or
            address (nothing changes).
        """
        problem = _refused(node_id, address, "asked to join")
        if problem is not None:
            raise InvalidMemberError(problem)
        self.addresses[node_id] = address
        self.removed.discard(node_id)
        if voter:
            self.non_voters.discard(node_id)
        else:
            self.non_voters.add(node_id)

    def remove_member(self, node_id: str) -> None:
        """Ask for ``node_id`` to leave the cluster.

        :raises ~replobj.errors.InvalidMemberError: if ``node_id`` cannot name a member.
        """
        problem = _refused(node_id, None, "asked to leave")
        if problem is not None:
            raise InvalidMemberError(problem)
        self.removed.add(node_id)

    @query
    def wanted(self) -> dict[str, str]:
        """Members asked for and not removed since, with their addresses."""
        return {n: a for n, a in self.addresses.items() if n not in self.removed}


def _refused(node_id: object, address: object, what: str) -> str | None:
    """Log and return why a directory entry is unusable, or ``None`` if it is fine."""
    problem = member_problem(node_id, address)
    if problem is None:
        return None
    message = f"cluster directory: refused a member {what} ({problem}); the entry is ignored"
    logger.error("%s", message)
    return message
