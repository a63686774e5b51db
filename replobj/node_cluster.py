"""Cluster operations of a :class:`~replobj.node.Node`: status, leadership, membership, snapshots.

Membership changes go through the replicated :class:`~replobj.directory.ClusterDirectory`
(so every member learns the new addresses from the log); on the leader, a background
loop moves the Raft configuration one step at a time toward what the directory asks,
and on every node it keeps the transport's address book in line with the directory.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc

from . import errors
from .directory import DIRECTORY_NAME, ClusterDirectory
from .identity import IdentityKeeper
from .metrics import NodeMetrics
from .node_calls import NodeCalls
from .node_checks import check_address, check_member, split_address
from .node_status import NodeStatus, PeerLag
from .raft.types import ClusterConfig, NodeId, ProposalId, Refusal, RefusalReason, Role
from .replicated import spec_of
from .runtime import RaftRuntime
from .statemachine import StateMachine
from .transport.base import Address, Transport

logger = logging.getLogger("replobj")


def parse_address(address: str) -> Address:
    """``"host:port"`` → ``(host, port)``; IPv6 hosts in brackets (``"[::1]:7001"``).

    :raises ~replobj.errors.ConfigurationError: (a ``ValueError``) if the host is neither
        an IP address nor a DNS name, or the port is not 1-65535.
    """
    return check_address(address, parameter="address")


class ClusterOperations(NodeCalls):
    """What a node does to and reports about the cluster as a whole (a base of ``Node``)."""

    peers: dict[NodeId, str]
    statemachine: StateMachine
    directory: ClusterDirectory
    _transport: Transport | None
    _tasks_group: anyio.abc.TaskGroup | None
    _registering: bool
    _identity: IdentityKeeper | None
    _pinned_cluster_id: str
    _naming = False

    @property
    def cluster_id(self) -> str:
        """The cluster's id: fixed by its first leader and replicated; ``""`` until known
        (on a restarted member, the one stamped on its directory until the log replays)."""
        if self.directory.cluster_id:
            return self.directory.cluster_id
        return self._identity.cluster_id if self._identity is not None else ""

    @property
    def stamped_cluster_id(self) -> str:
        """The cluster id durably stamped on this node's data directory, ``""`` until it is."""
        return self._identity.cluster_id if self._identity is not None else ""

    def status(self) -> NodeStatus:
        """Role, term, leader, members, commit/applied indexes and, on the leader, peer lag."""
        raft = self.runtime.raft
        status = raft.status()
        peers = {
            peer: PeerLag(p.match_index, status.last_index - p.match_index, p.state)
            for peer, p in status.peers.items()
        }
        removed = self._removed(status.config)
        return NodeStatus(
            id=self.id,
            role="removed" if removed else status.role.value,
            term=status.term,
            leader=status.leader,
            voters=tuple(sorted(status.config.voters)),
            learners=tuple(sorted(status.config.learners)),
            commit_index=status.commit_index,
            applied_index=self.statemachine.applied_index,
            last_index=status.last_index,
            snapshot_index=status.snapshot_index,
            peers=peers,
            snapshot_error=self.runtime.snapshot_error,
            removed=removed,
            cluster_id=self.cluster_id,
            stalled=status.stalled,
        )

    def metrics(self) -> NodeMetrics:
        """This member's figures since it started (:mod:`replobj.metrics`): Raft position,
        calls in flight and their latency, elections, snapshots, messages.

        :raises ~replobj.errors.NodeStoppedError: if the node is not running.
        """
        runtime = self.runtime
        status = runtime.raft.status()
        latency = self._latency
        taken, installed, size, seconds = runtime.snapshot_counters
        transport = self._transport.stats if self._transport is not None else None
        return NodeMetrics(
            node_id=self.id,
            role=status.role.value,
            term=status.term,
            commit_index=status.commit_index,
            applied_index=self.statemachine.applied_index,
            calls_in_flight=len(self._in_flight),
            calls_waiting=self._room.waiting,
            command_latency=latency.cumulative(),
            commands=latency.total,
            command_seconds=latency.total_seconds,
            elections=runtime.counters.elections,
            leader_changes=runtime.counters.leader_changes,
            snapshots_taken=taken,
            snapshots_installed=installed,
            snapshot_bytes=size,
            snapshot_seconds=seconds,
            messages_sent=transport.sent if transport else 0,
            messages_received=transport.received if transport else 0,
            messages_dropped=transport.dropped if transport else 0,
            messages_rejected=(transport.rejected + transport.rejected_messages)
            if transport
            else 0,
            peer_lag={peer: status.last_index - p.match_index for peer, p in status.peers.items()},
        )

    def _removed(self, config: ClusterConfig) -> bool:
        """Whether this node was asked to leave and is out of the (new) configuration.

        A removed node may never receive the final configuration (the leader stops
        sending to it once it is out), so being outside the new half of a joint
        configuration counts; the directory's request tells it from a joiner that has
        not been added yet.
        """
        leaving = self.id in self.directory.removed
        return leaving and bool(config.members) and self.id not in config.voters | config.learners

    @property
    def is_leader(self) -> bool:
        """Whether this node leads right now (it may be deposed a moment later)."""
        return self.runtime.is_leader

    async def leader_changes(self) -> AsyncIterator[NodeId | None]:
        """The leader this node knows of now, then again each time that changes (``None``
        while an election is under way).

        For work only the leader should do::

            async for leader in node.leader_changes():
                if leader == node.id:
                    ...  # start the job; cancel it on the next change

        Leadership is not a lock: a deposed leader learns it only when it hears from the
        new one, so work that must never run twice at once should also go through a
        command.

        :raises ~replobj.errors.NodeStoppedError: once the node is stopped.
        """
        last: NodeId | object | None = object()
        while True:
            runtime = self.runtime
            changed = runtime.role_changed
            leader = runtime.raft.leader
            if leader != last:
                last = leader
                yield leader
            with anyio.move_on_after(self._options.election_timeout):
                await changed.wait()  # woken at the latest to notice the node stopped

    async def wait_for_leader(self, timeout: float | None = None) -> NodeId:
        """The leader's id, once one is known.

        :raises ~replobj.errors.CallTimeoutError: if none is elected in time.
        """
        await self.fair_checkpoint()
        limit = timeout or self.call_timeout
        with anyio.move_on_after(limit):
            while self.runtime.raft.leader is None:
                await self._wait_role_change()
            leader = self.runtime.raft.leader
            assert leader is not None
            return leader
        raise self._stalled_or(
            errors.CallTimeoutError(f"no leader elected within {limit:.1f}s", outcome_known=True)
        )

    async def add_member(
        self, node_id: NodeId, address: str, *, voter: bool = True, timeout: float | None = None
    ) -> None:
        """Add ``node_id`` (listening at ``address``); returns once it is a voter.

        The node must be started with ``join=True``. It first replicates as a learner and
        is promoted automatically once caught up (joint consensus). With ``voter=False``
        it stays a non-voting member: it receives the log and serves reads (local and
        linearizable) but neither votes nor counts toward commits, so it adds read capacity
        without slowing writes; this returns once it is a learner. Calling again with
        ``voter=True`` promotes it.

        :raises ~replobj.errors.InvalidMemberError: if ``node_id`` is not a non-empty str
            of at most 255 UTF-8 bytes, or ``address`` is not ``"host:port"`` with an IP
            address or DNS name and a port 1-65535 (nothing is proposed then).
        :raises ~replobj.errors.InvalidConfigChangeError: if ``voter=False`` names a voter
            (remove it first, then add it back as a non-voting member).
        :raises ~replobj.errors.CallTimeoutError: if it did not become a voter (or learner)
            in time (it stays scheduled: it is promoted as soon as it catches up).
        """
        check_member(node_id, address)
        if not voter and node_id in self.runtime.raft.config.voters:
            raise errors.InvalidConfigChangeError(
                Refusal(
                    RefusalReason.INVALID_CONFIG_CHANGE,
                    f"{node_id!r} is a voter; remove it, then add it back with voter=False",
                )
            )
        await self._directory_call("add_member", (node_id, address, voter), timeout)
        if voter:
            await self._wait_config(
                lambda c: node_id in c.voters and not c.is_joint,
                timeout,
                f"{node_id!r} to become a voter",
            )
        else:
            await self._wait_config(
                lambda c: node_id in c.learners and not c.is_joint,
                timeout,
                f"{node_id!r} to become a non-voting member",
            )

    async def remove_member(self, node_id: NodeId, *, timeout: float | None = None) -> None:
        """Remove ``node_id`` (any member, the leader included); returns once it is out.

        :raises ~replobj.errors.InvalidMemberError: if ``node_id`` cannot name a member.
        """
        check_member(node_id)
        await self._directory_call("remove_member", (node_id,), timeout)
        await self._wait_config(
            lambda c: node_id not in c.members and not c.is_joint, timeout, f"{node_id!r} to leave"
        )

    async def transfer_leadership(self, to: NodeId | None = None) -> None:
        """Ask the leader (this node) to hand over to ``to`` or the most caught-up voter.

        :raises ~replobj.errors.NotLeaderError: if this node is not the leader.
        """
        runtime = self.runtime
        refusal = runtime.raft.transfer_leadership(to)
        if refusal is not None:
            raise errors.error_for_refusal(refusal)
        runtime.kick()
        while runtime.is_leader:
            await self._wait_role_change()

    async def snapshot(self) -> int:
        """Take a snapshot now and compact the log; returns the snapshot's index.

        The state is pickled in a worker thread (heartbeats and replication go on;
        committed entries are applied once it is pickled), after any snapshot under way.

        :raises ~replobj.errors.UnpicklableStateError: if an object's state cannot be
            pickled (the node keeps its log and serves on).
        :raises ~replobj.errors.NodeStoppedError: if the node stops before it is taken.
        """
        await self.fair_checkpoint()
        meta = await self.runtime.take_snapshot()
        return meta.last_index if meta else self.runtime.raft.snapshot.last_index

    def _addresses(self) -> dict[NodeId, Address]:
        """Every known member's address; one the directory refused is never in it."""
        known = {**self.peers, **self.directory.addresses}
        split = {n: split_address(a) for n, a in known.items()}
        return {n: a for n, a in split.items() if not isinstance(a, str)}

    async def _directory_call(
        self, method: str, args: tuple[Any, ...], timeout: float | None
    ) -> None:
        cls = spec_of(self.directory).class_name
        cmd, payload = self.new_command(DIRECTORY_NAME, cls, method, args, {})
        outcome = await self.submit(cmd.seq, payload, timeout)
        for result in outcome.commands:
            if result.client_id == cmd.client_id and result.seq == cmd.seq:
                result.result()

    async def _wait_config(self, done: Any, timeout: float | None, what: str) -> None:
        limit = timeout or self.call_timeout * 3
        with anyio.move_on_after(limit):
            while not (done(self.runtime.raft.config) and self.runtime.raft.config_committed):
                with anyio.move_on_after(self._options.heartbeat_interval):
                    await self.runtime.role_changed.wait()
            return
        raise errors.CallTimeoutError(f"timed out waiting for {what}", outcome_known=False)

    async def _reconcile_loop(self) -> None:
        """Keep the transport's address book and (on the leader) the Raft config in line
        with the replicated directory."""
        known: dict[NodeId, Address] = {}
        while True:
            await anyio.sleep(self._options.heartbeat_interval)
            runtime = self.runtime
            addresses = self._addresses()
            if addresses != known and self._transport is not None:
                known = addresses
                self._transport.update_peers({n: a for n, a in addresses.items() if n != self.id})
            await self._stamp_cluster_id()
            if runtime.raft.role is Role.LEADER:
                self._name_cluster()
                self._register_addresses(runtime)
                self._reconcile_membership(runtime)

    async def _stamp_cluster_id(self) -> None:
        """Stamp the directory with the cluster id once the log has fixed it.

        :raises ~replobj.errors.ForeignDataDirError: if the log names another cluster than
            the one stamped (or pinned): the node stops.
        """
        keeper, cluster_id = self._identity, self.directory.cluster_id
        if keeper is not None and keeper.needs_stamp(cluster_id):
            await anyio.to_thread.run_sync(keeper.stamp, cluster_id)

    def _name_cluster(self) -> None:
        """Propose the cluster's id if the directory has none yet (the first applied wins)."""
        if self.directory.cluster_id or self._naming or self._tasks_group is None:
            return
        self._naming = True
        self._tasks_group.start_soon(self._propose_cluster_id)

    async def _propose_cluster_id(self) -> None:
        cluster_id = self._pinned_cluster_id or self.stamped_cluster_id or uuid.uuid4().hex
        try:
            await self._directory_call("set_cluster_id", (cluster_id,), None)
        except errors.ReplObjError as exc:
            logger.warning("%s: could not fix the cluster id yet: %s", self.id, exc)
        finally:
            self._naming = False

    def _register_addresses(self, runtime: RaftRuntime) -> None:
        """Put the addresses of members the directory lacks into the log (first leader)."""
        known = self.directory.addresses
        missing = {
            n: a
            for n, a in self.peers.items()
            if n in runtime.raft.config.members and n not in known
        }
        if missing and not self._registering and self._tasks_group is not None:
            self._registering = True
            self._tasks_group.start_soon(self._register, missing)

    async def _register(self, addresses: dict[NodeId, str]) -> None:
        try:
            await self._directory_call("register", (addresses,), None)
        except errors.ReplObjError as exc:
            logger.warning("%s: could not register member addresses yet: %s", self.id, exc)
        finally:
            self._registering = False

    def _reconcile_membership(self, runtime: RaftRuntime) -> None:
        """Move the Raft configuration one step toward the directory's requests."""
        directory = self.directory
        config = runtime.raft.config
        if config.is_joint or not runtime.raft.config_committed:
            return
        wanted = set(directory.wanted())
        for node_id in sorted(wanted - config.members):
            promote = node_id not in directory.non_voters
            if isinstance(runtime.raft.add_member(node_id, promote=promote), ProposalId):
                kind = "a learner" if promote else "a non-voting member"
                logger.info("%s: adding %s as %s", self.id, node_id, kind)
                runtime.kick()
            return
        promotions = (config.learners - config.auto_promote) & wanted - directory.non_voters
        for node_id in sorted(promotions):
            if isinstance(runtime.raft.add_member(node_id), ProposalId):
                logger.info("%s: promoting %s once caught up", self.id, node_id)
                runtime.kick()
            return
        for node_id in sorted(directory.removed & config.members):
            if runtime.raft.remove_member(node_id):
                logger.info("%s: removing %s", self.id, node_id)
                runtime.kick()
            return
