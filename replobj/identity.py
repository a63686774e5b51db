"""Whose data a store holds: the member and cluster stamped on it, checked at every start.

A data directory moved to the wrong member, or to a member of another cluster, would
otherwise be accepted silently: its log could win an election and its entries be applied
by members that never proposed them. So every store carries a
:class:`~replobj.storage.StoreIdentity`: the member id from the first start, the cluster
id once the member has learned it (the first leader fixes it through the replicated
:class:`~replobj.directory.ClusterDirectory`). A stamp for another member or another
cluster stops the node before it touches the store or the network. See
docs/operations.md, "Identity" and "Moving a member's data".
"""

from __future__ import annotations

import logging

from .directory import DIRECTORY_NAME
from .errors import ForeignDataDirError
from .pickling import StopFlag
from .raft.types import NodeId
from .statemachine import StateMachine
from .storage.protocol import Storage, StoreIdentity

__all__ = ["IdentityCheckedSnapshots", "IdentityKeeper"]

logger = logging.getLogger("replobj")

_MOVING = "see docs/operations.md, 'Moving a member's data'"


class IdentityKeeper:
    """Checks and completes the identity stamp of one node's store.

    :param storage: the node's open store.
    :param member_id: the id the node runs as.
    :param where: the data directory (or a description of the store), for messages.
    :param pinned: the cluster id the node was told to expect (``""``: any).
    """

    def __init__(self, storage: Storage, member_id: NodeId, where: str, pinned: str = "") -> None:
        self._storage = storage
        self._member_id = member_id
        self._where = where
        self._pinned = pinned
        self._stamped = ""

    @property
    def cluster_id(self) -> str:
        """The cluster id stamped on the store, ``""`` until one is."""
        return self._stamped

    def check_at_start(self) -> None:
        """Refuse a store stamped for another member or cluster; stamp an unstamped one
        (one that holds data comes from an older version: that is logged).

        :raises ~replobj.errors.ForeignDataDirError: if the stamp names another member,
            or another cluster than the pinned one.
        """
        storage = self._storage
        stamp = storage.identity()
        if stamp is None:
            has_data = storage.last_index() > 0 or storage.snapshot_meta().last_index > 0
            if has_data or storage.hard_state().term > 0:
                logger.warning(
                    "%s: the data directory %s holds data but no identity stamp (written by an "
                    "older version); stamping it as member %r",
                    self._member_id,
                    self._where,
                    self._member_id,
                )
            stamp = StoreIdentity(self._member_id, self._pinned)
            storage.set_identity(stamp)
        if stamp.member_id != self._member_id:
            raise ForeignDataDirError(
                f"the data directory {self._where} belongs to member {stamp.member_id!r} "
                f"(cluster {stamp.cluster_id or 'not yet known'}), not to {self._member_id!r}: "
                f"start member {stamp.member_id!r} on it, or give {self._member_id!r} its own "
                f"directory (an empty one with join=True to start over); {_MOVING}"
            )
        self._stamped = stamp.cluster_id
        if self._pinned and stamp.cluster_id and stamp.cluster_id != self._pinned:
            raise self.foreign_cluster(stamp.cluster_id, self._pinned, "was told to expect")

    def needs_stamp(self, cluster_id: str) -> bool:
        """Whether ``cluster_id`` (the one the log says) is not stamped yet."""
        return bool(cluster_id) and cluster_id != self._stamped

    def check_cluster(self, cluster_id: str) -> None:
        """Refuse a log or snapshot naming another cluster than the stamp or the pin.

        :raises ~replobj.errors.ForeignDataDirError: if it does.
        """
        if not cluster_id:
            return
        if self._stamped and cluster_id != self._stamped:
            raise self.foreign_cluster(self._stamped, cluster_id, "now has in its log")
        if self._pinned and cluster_id != self._pinned:
            raise self.foreign_cluster(cluster_id, self._pinned, "was told to expect")

    def stamp(self, cluster_id: str) -> None:
        """Stamp ``cluster_id`` (durable when this returns; blocking I/O: run it in a thread).

        :raises ~replobj.errors.ForeignDataDirError: if another cluster id is stamped.
        """
        self.check_cluster(cluster_id)
        self._storage.set_identity(StoreIdentity(self._member_id, cluster_id))
        self._stamped = cluster_id
        logger.info(
            "%s: data directory %s stamped for cluster %s", self._member_id, self._where, cluster_id
        )

    def foreign_cluster(self, stamped: str, other: str, how: str) -> ForeignDataDirError:
        """The error (logged at ERROR) for a store of cluster ``stamped`` meeting ``other``."""
        error = ForeignDataDirError(
            f"the data directory {self._where} of member {self._member_id!r} is stamped for "
            f"cluster {stamped}, but the node {how} cluster {other}: the directory belongs to "
            f"another cluster; start that cluster's member on it, or start this member on an "
            f"empty directory with join=True; {_MOVING}"
        )
        logger.error("%s: %s", self._member_id, error)
        return error


class IdentityCheckedSnapshots:
    """The state machine as the runtime's snapshotter; a received snapshot of another
    cluster fails the check before it replaces anything.

    :param machine: the node's state machine.
    :param keeper: the store's identity.
    """

    def __init__(self, machine: StateMachine, keeper: IdentityKeeper) -> None:
        self._machine = machine
        self._keeper = keeper

    def snapshot(self, stop: StopFlag | None = None) -> bytes:
        """See :meth:`~replobj.statemachine.StateMachine.snapshot`."""
        return self._machine.snapshot(stop)

    def restore_checked(self, checked: object) -> None:
        """See :meth:`~replobj.statemachine.StateMachine.restore_checked`."""
        self._machine.restore_checked(checked)

    def check_snapshot(self, data: bytes, stop: StopFlag | None = None) -> object:
        """See :meth:`~replobj.statemachine.StateMachine.check_snapshot` (this may run in a
        worker thread too).

        :raises ~replobj.errors.ForeignDataDirError: if the snapshot names another
            cluster than this store's stamp (or the pinned one).
        """
        checked = self._machine.check_snapshot(data, stop)
        directory = checked.states.get(DIRECTORY_NAME)
        if isinstance(directory, dict):
            self._keeper.check_cluster(str(directory.get("cluster_id", "")))
        return checked
