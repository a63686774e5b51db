"""The cluster directory: a replicated object every node attaches under ``__cluster__``.

It holds the address of every member and the membership the operators asked for.
Because it lives in the log like any other object, a request made on any node reaches
the leader, survives leader changes and is part of snapshots; the leader's runtime
then reconciles the Raft configuration toward it, one change at a time
(see :meth:`replobj.node.Node.add_member`).
"""

from __future__ import annotations

from .replicated import query, replicated

DIRECTORY_NAME = "__cluster__"
"""The name the directory is attached under on every node."""


@replicated(name="replobj.ClusterDirectory")
class ClusterDirectory:
    """Member addresses and the wanted membership, replicated through the log."""

    def __init__(self, addresses: dict[str, str] | None = None) -> None:
        self.addresses: dict[str, str] = dict(addresses or {})
        self.removed: set[str] = set()

    def add_member(self, node_id: str, address: str) -> None:
        """Ask for ``node_id`` (reachable at ``address``) to join as a voter."""
        self.addresses[node_id] = address
        self.removed.discard(node_id)

    def remove_member(self, node_id: str) -> None:
        """Ask for ``node_id`` to leave the cluster."""
        self.removed.add(node_id)

    @query
    def wanted(self) -> dict[str, str]:
        """The members that should be in the configuration, with their addresses."""
        return {n: a for n, a in self.addresses.items() if n not in self.removed}
