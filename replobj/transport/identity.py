"""Cluster identity on the wire: the check both ends run, and logging each refusal once.

A node learns its cluster id at bootstrap (``""`` until then). Two nodes that both know
theirs and disagree belong to different clusters: an address book or a data directory
points at the wrong place, and letting them talk would mix two logs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from replobj.errors import ClusterMismatchError, ConfigurationError
from replobj.raft.types import NodeId

__all__ = ["MAX_CLUSTER_ID_BYTES", "ClusterIds", "check_cluster", "cluster_id_bytes"]

MAX_CLUSTER_ID_BYTES: Final = 64
"""The longest cluster id, in UTF-8 bytes, that the hello and the UDP header carry."""


def cluster_id_bytes(cluster_id: str) -> bytes:
    """``cluster_id`` as sent on the wire.

    :raises ~replobj.errors.ConfigurationError: if it is longer than
        :data:`MAX_CLUSTER_ID_BYTES` UTF-8 bytes.
    """
    raw = cluster_id.encode()
    if len(raw) > MAX_CLUSTER_ID_BYTES:
        raise ConfigurationError(
            f"cluster id {cluster_id[:40]!r}... is {len(raw)} UTF-8 bytes; the wire carries at "
            f"most {MAX_CLUSTER_ID_BYTES}"
        )
    return raw


def check_cluster(*, ours: str, theirs: str, peer: NodeId, node: NodeId) -> None:
    """Refuse a peer whose known cluster id differs from ours; an unknown (``""``) one passes.

    :raises ~replobj.errors.ClusterMismatchError: naming both ids and what to check.
    """
    if ours and theirs and ours != theirs:
        raise ClusterMismatchError(
            f"{node!r} is in cluster {ours!r} but peer {peer!r} is in cluster {theirs!r}; "
            "this data directory or this address belongs to another cluster: check the "
            "address book and that each member was started on its own data directory"
        )


class ClusterIds:
    """This node's cluster id (from the Node, ``""`` while unknown) and which peers'
    mismatches were already logged, so each is logged once, not on every reconnect."""

    __slots__ = ("_logged", "_source")

    def __init__(self, source: Callable[[], str] | None) -> None:
        self._source = source
        self._logged: set[tuple[NodeId, str]] = set()

    def current(self) -> str:
        """This node's cluster id now (``""`` while not known)."""
        return self._source() if self._source is not None else ""

    def first_report(self, peer: NodeId, error: ClusterMismatchError) -> bool:
        """True the first time ``error`` (which names both ids) is reported for ``peer``."""
        key = (peer, str(error))
        if key in self._logged:
            return False
        self._logged.add(key)
        return True
