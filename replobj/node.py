"""``Node``: one member of a replobj cluster, embedded in the application's process.

A node owns a Raft core, its storage, its transport, the runtime that drives them and
the state machine holding the attached objects. It is used as an async context
manager; calls on attached objects go through :mod:`replobj.proxy`.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.abc

from . import errors
from .command import Command, decode_commands, encode_command, new_client_id, stamp_command
from .directory import DIRECTORY_NAME, ClusterDirectory
from .proxy import ObjectProxy
from .raft.node import RaftNode
from .raft.options import RaftOptions, RestoredState
from .raft.types import ClusterConfig, Entry, NodeId, Role, SnapshotMeta
from .replicated import spec_of
from .runtime import RaftRuntime, RuntimeOptions
from .statemachine import ApplyOutcome, StateMachine
from .storage.memory import MemoryStorage
from .storage.protocol import Storage
from .storage.registry import open_storage
from .transport.base import Address, Transport
from .transport.tcp import TcpTransport
from .transport.udp import UdpTransport

logger = logging.getLogger("replobj")

_T = TypeVar("_T")

_MESSAGE_MARGIN = 1024
"""Bytes of a message kept for headers, so entry batches and snapshot chunks fit the transport."""


def parse_address(address: str) -> Address:
    """``"host:port"`` → ``(host, port)``; IPv6 hosts in brackets (``"[::1]:7001"``).

    :raises ValueError: if the address has no valid port.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected 'host:port', got {address!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class PeerLag:
    """How far one member is behind the leader (known on the leader only)."""

    match_index: int
    lag: int
    state: str


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """What :meth:`Node.status` reports."""

    id: NodeId
    role: str
    term: int
    leader: NodeId | None
    voters: tuple[NodeId, ...]
    learners: tuple[NodeId, ...]
    commit_index: int
    applied_index: int
    last_index: int
    snapshot_index: int
    peers: dict[NodeId, PeerLag]
    snapshot_error: str | None = None
    """Why the last snapshot failed (e.g. an object's state cannot be pickled), or ``None``;
    the node keeps its log and serves on, and tries again after ``snapshot_entries`` more."""


class Node:
    """One member of a replicated-object cluster.

    :param node_id: this member's stable name.
    :param listen: ``"host:port"`` to listen on (loopback or the address peers use).
    :param peers: every founding member's address, this node included, to bootstrap a
        new cluster; on restart the stored membership wins (a mismatch is logged).
    :param data_dir: where the RocksDB store lives; ``None`` keeps everything in memory
        (nothing survives a restart).
    :param secret: the cluster secret (same on every node); required unless every
        address is loopback.
    :param join: start as a node to be added to a running cluster (do not bootstrap);
        ``peers`` may be omitted: the members' addresses arrive with the log, and the
        TCP transport learns the leader's address when it connects.
    :param transport: ``"tcp"`` (default) or ``"udp"`` (one datagram per message; entry
        batches and snapshot chunks are sized to fit, and a command larger than a
        datagram is refused).
    :param storage: a ready :class:`~replobj.storage.Storage` instead of ``data_dir``.
    :param election_timeout: seconds (randomised up to twice this).
    :param heartbeat_interval: seconds between leader heartbeats.
    :param snapshot_entries: applied entries between automatic snapshots.
    :param call_timeout: default seconds a call may take before
        :class:`~replobj.errors.CallTimeoutError`.
    :param seed: seed for timeouts' jitter (tests).
    :param wrap_transport: called with the transport before it starts; what it returns is
        used instead (tests wrap it in :class:`~replobj.transport.FaultyTransport` to cut or
        slow this node's links at run time).
    """

    def __init__(
        self,
        node_id: NodeId,
        *,
        listen: str,
        peers: Mapping[NodeId, str] | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        secret: str | bytes | None = None,
        join: bool = False,
        transport: str = "tcp",
        storage: Storage | None = None,
        election_timeout: float = 1.0,
        heartbeat_interval: float = 0.1,
        snapshot_entries: int = 20_000,
        call_timeout: float = 10.0,
        seed: int | None = None,
        wrap_transport: Callable[[Transport], Transport] | None = None,
    ) -> None:
        self.id = node_id
        self.listen = listen
        self.peers = dict(peers or {})
        if not join and not self.peers:
            self.peers = {node_id: listen}
        self.data_dir = data_dir
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.join = join
        if transport not in ("tcp", "udp"):
            raise ValueError(f"transport must be 'tcp' or 'udp', got {transport!r}")
        self.transport_kind = transport
        self.call_timeout = call_timeout
        self._storage = storage
        self._options = RuntimeOptions(election_timeout, heartbeat_interval, snapshot_entries)
        self._seed = seed
        self._wrap_transport = wrap_transport
        self.statemachine = StateMachine()
        self.directory = self.statemachine.attach(DIRECTORY_NAME, ClusterDirectory())
        self._registering = False
        self._tasks_group: anyio.abc.TaskGroup | None = None
        self._client_id = new_client_id()
        self.max_command_bytes = 1 << 20
        self._next_seq = 0
        self._in_flight: set[int] = set()
        self._in_flight_heap: list[int] = []
        self._runtime: RaftRuntime | None = None
        self._transport: Transport | None = None
        self._outer: anyio.abc.TaskGroup | None = None
        self._stop: anyio.Event | None = None
        self._stopped: anyio.Event | None = None
        self._last_outcome: ApplyOutcome | None = None
        self._restarted = False
        self._member_of: ClusterConfig | None = None
        self.diverged: dict[str, errors.ClassMismatchError] = {}
        """Objects whose replica here missed a command because of a class mismatch."""

    # ------------------------------------------------------------------ objects

    def attach(self, name: str, obj: _T) -> Any:
        """Attach ``obj`` under ``name`` and return a proxy whose methods go through the log.

        Attach the same class under the same name on every node, before starting.

        :raises ~replobj.errors.AttachAfterStartError: if the node has started.
        :raises ~replobj.errors.NotReplicatedError: if the class is not ``@replicated``.
        """
        self.statemachine.attach(name, obj)
        return ObjectProxy(self, name, obj, spec_of(obj))

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Node:
        self._outer = anyio.create_task_group()
        await self._outer.__aenter__()
        try:
            await self._outer.start(self.serve)
        except BaseException:
            self._outer.cancel_scope.cancel()
            await self._outer.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
        if self._outer is not None:
            await self._outer.__aexit__(None, None, None)
            self._outer = None

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the node until :meth:`aclose`; for ``await task_group.start(node.serve)``.

        Several nodes in one task group may then stop in any order.

        :raises ~replobj.errors.StorageError: if the data directory cannot be used.
        :raises ~replobj.errors.TransportError: if the listen address cannot be bound.
        """
        self.statemachine.freeze()
        storage = self._open_storage()
        self._stop = anyio.Event()
        self._stopped = anyio.Event()
        try:
            restored = self._restore(storage)
            transport = self._make_transport()
            raft = RaftNode(
                self.id,
                restored,
                self._raft_options(transport.max_message_bytes),
                prepare_payload=self._stamp,
            )
            await transport.start()
            self._transport = transport
            try:
                async with anyio.create_task_group() as tasks:
                    runtime = RaftRuntime(
                        raft,
                        storage,
                        transport,
                        self._apply,
                        self.statemachine,
                        self._options,
                        seed=self._seed,
                    )
                    self._runtime = runtime
                    await tasks.start(runtime.run)
                    self._tasks_group = tasks
                    tasks.start_soon(self._reconcile_loop)
                    logger.info("%s started on %s (term %d)", self.id, self.listen, raft.term)
                    task_status.started()
                    await self._stop.wait()
                    if runtime.is_leader and len(runtime.raft.config.voters) > 1:
                        with anyio.move_on_after(self._options.election_timeout):
                            await self.transfer_leadership()
                    tasks.cancel_scope.cancel()
            finally:
                await transport.aclose()
        finally:
            self._runtime = None
            self._transport = None
            with contextlib.suppress(errors.StorageError):
                storage.sync()
            storage.close()
            self._stopped.set()
            logger.info("%s stopped", self.id)

    async def start(self, tasks: anyio.abc.TaskGroup) -> None:
        """Start the node in ``tasks`` (equivalent to ``await tasks.start(node.serve)``)."""
        await tasks.start(self.serve)

    async def aclose(self) -> None:
        """Stop the node; a leader first hands leadership to another voter."""
        if self._stop is None or self._stopped is None:
            return
        self._stop.set()
        await self._stopped.wait()

    def _open_storage(self) -> Storage:
        if self._storage is not None:
            return self._storage
        if self.data_dir is None:
            return MemoryStorage()
        return open_storage(self.data_dir)

    def _restore(self, storage: Storage) -> RestoredState:
        restored = storage.load()
        fresh = restored.hard_state.term == 0 and not restored.entries
        fresh = fresh and restored.snapshot.last_index == 0 and not restored.snapshot.config.members
        if fresh and not self.join:
            meta = SnapshotMeta(config=ClusterConfig(voters=frozenset(self.peers)))
            writer = storage.begin_snapshot(meta)
            writer.commit()
            return RestoredState.bootstrap(set(self.peers))
        self._restarted = bool(restored.entries) or restored.snapshot.last_index > 0
        if restored.snapshot.last_index > 0:
            size = storage.snapshot_size()
            self.statemachine.restore(storage.read_snapshot_chunk(0, size))
        stored = restored.snapshot.config.members
        if self.peers and stored and set(self.peers) != stored and not self.join:
            logger.warning(
                "%s: the stored membership %s differs from peers=%s; using the stored one",
                self.id,
                sorted(stored),
                sorted(self.peers),
            )
        return restored

    def _make_transport(self) -> Transport:
        listen = parse_address(self.listen)
        peers = {n: parse_address(a) for n, a in self._addresses().items() if n != self.id}
        transport: Transport
        if self.transport_kind == "udp":
            transport = UdpTransport(self.id, listen, peers, secret=self.secret)
        else:
            transport = TcpTransport(self.id, listen, peers, secret=self.secret)
        return transport if self._wrap_transport is None else self._wrap_transport(transport)

    def _raft_options(self, max_message_bytes: int) -> RaftOptions:
        budget = max(1024, max_message_bytes - _MESSAGE_MARGIN)
        self.max_command_bytes = budget - 64
        return RaftOptions(
            election_ticks=self._options.election_ticks,
            max_append_bytes=min(1 << 20, budget),
            snapshot_chunk_bytes=min(self._options.snapshot_chunk_bytes, budget),
        )

    def _addresses(self) -> dict[NodeId, str]:
        return {**self.peers, **self.directory.addresses}

    @staticmethod
    def _stamp(payload: bytes) -> bytes:
        return stamp_command(payload, time.time())

    def _apply(self, entry: Entry, local: object) -> object:
        outcome = self.statemachine.apply(entry, local if isinstance(local, Command) else None)
        if outcome.error is not None:
            logger.error(
                "%s: entry %d is not a valid command: %s", self.id, entry.index, outcome.error
            )
        for result in outcome.commands:
            if result.error is not None and isinstance(result.error, errors.ClassMismatchError):
                self._record_divergence(entry, outcome)
                break
        return outcome

    def _record_divergence(self, entry: Entry, outcome: ApplyOutcome) -> None:
        commands = decode_commands(entry.payload)
        for cmd, result in zip(commands, outcome.commands, strict=False):
            if isinstance(result.error, errors.ClassMismatchError):
                self.diverged.setdefault(cmd.object_name, result.error)
                logger.error(
                    "%s: entry %d did not apply here: %s (this replica of %r has diverged)",
                    self.id,
                    entry.index,
                    result.error,
                    cmd.object_name,
                )

    async def local_read_ready(self) -> None:
        """Before the first local read after a restart, catch up past what was served before.

        A restarted node rebuilds its state from its snapshot and log, so until it has
        applied what the cluster had committed its local state may be older than what it
        served before the restart; one ReadIndex barrier closes that gap (local reads never
        go backwards on a node).
        """
        if self._restarted:
            await self.read_barrier()
            self._restarted = False

    def _check_member(self) -> None:
        raft = self.runtime.raft
        config = raft.config
        if config is self._member_of:
            return
        if self.id in config.members:
            self._member_of = config
        elif config.members and raft.config_committed:
            raise errors.NodeRemovedError(
                f"node {self.id!r} was removed from the cluster (members: "
                f"{', '.join(sorted(config.members))}); stop it, or add it back from a member"
            )

    def check_object(self, name: str) -> None:
        """Refuse calls on an object whose replica here has diverged (a class mismatch).

        :raises ~replobj.errors.ClassMismatchError: if a command for ``name`` could not be
            applied here because another node attached a different class under ``name``.
        """
        error = self.diverged.get(name)
        if error is not None:
            raise errors.ClassMismatchError(str(error))

    # ------------------------------------------------------------------ calls

    @property
    def runtime(self) -> RaftRuntime:
        """The running runtime.

        :raises ~replobj.errors.NodeStoppedError: if the node is not running.
        """
        if self._runtime is None:
            raise errors.NodeStoppedError(
                f"node {self.id!r} is not running; use `async with node:` or await node.start()"
            )
        return self._runtime

    @property
    def transport(self) -> Transport | None:
        """The running transport (as returned by ``wrap_transport``), ``None`` when stopped."""
        return self._transport

    def new_command(
        self, name: str, class_name: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Command, bytes]:
        """Build and encode the next command of this node's client session.

        Pass the command to :meth:`submit` as ``local`` only if
        :func:`~replobj.command.has_immutable_arguments` holds for it.

        :raises ~replobj.errors.UnpicklableArgumentError: if an argument cannot be pickled.
        """
        self._next_seq += 1
        seq = self._next_seq
        lowest = self._lowest_in_flight(seq)
        cmd = Command(
            self._client_id,
            seq,
            name,
            class_name,
            method,
            args,
            dict(kwargs) if kwargs else {},
            lowest_pending=lowest,
        )
        payload = encode_command(cmd)
        if len(payload) > self.max_command_bytes:
            raise errors.CommandTooLargeError(
                f"{name}.{method} encodes to {len(payload)} bytes but the {self.transport_kind} "
                f"transport carries at most {self.max_command_bytes}; pass smaller arguments"
            )
        self._in_flight.add(seq)
        heapq.heappush(self._in_flight_heap, seq)
        return cmd, payload

    def finish_command(self, seq: int) -> None:
        """The caller received the outcome of ``seq`` (it may be forgotten by the sessions)."""
        self._in_flight.discard(seq)

    def _lowest_in_flight(self, seq: int) -> int:
        heap = self._in_flight_heap
        while heap and heap[0] not in self._in_flight:
            heapq.heappop(heap)
        return heap[0] if heap else seq

    async def submit(
        self, seq: int, payload: bytes, timeout: float | None, local: Command | None = None
    ) -> ApplyOutcome:
        """Get ``payload`` applied through the leader; the outcome is this replica's.

        Retries (same payload, hence same client sequence number: applied at most once)
        across leader changes until ``timeout``. ``local``, the command encoded in
        ``payload``, is applied here instead of the decoded payload; pass it only when
        its arguments are immutable (:func:`~replobj.command.has_immutable_arguments`).

        :raises ~replobj.errors.CallTimeoutError: if not applied in time.
        :raises ~replobj.errors.NodeRemovedError: if this node is no longer a member.
        """
        limit = timeout or self.call_timeout
        deadline = time.monotonic() + limit
        attempt = 2 * self._options.election_timeout
        reached_log = False
        try:
            self._check_member()
            while (now := time.monotonic()) < deadline:
                ticket = self.runtime.submit(payload, min(deadline, now + attempt), local)
                await ticket.wait()
                # Unknown once a leader may have appended it: sent and not explicitly refused.
                reached_log = reached_log or (ticket.sent and not ticket.refused)
                if ticket.applied and isinstance(ticket.result, ApplyOutcome):
                    return ticket.result
                if isinstance(ticket.error, errors.RaftRefusedError):
                    await self._wait_role_change()
                self._check_member()
        finally:
            self.finish_command(seq)
        raise errors.CallTimeoutError(
            f"the call did not complete within {limit:.1f}s "
            + (
                "(a leader may have appended it: it may still apply, at most once)"
                if reached_log
                else "(no leader appended it: it did not and will not apply)"
            ),
            outcome_known=not reached_log,
        )

    async def _wait_role_change(self) -> None:
        with anyio.move_on_after(self._options.heartbeat_interval * 2):
            await self.runtime.role_changed.wait()

    async def read_barrier(self, timeout: float | None = None) -> None:
        """Wait until this replica reflects every write committed before the call (ReadIndex).

        :raises ~replobj.errors.CallTimeoutError: if no leader confirmed a read in time.
        """
        self._check_member()
        limit = timeout or self.call_timeout
        with anyio.move_on_after(limit):
            while True:
                runtime = self.runtime
                try:
                    pending = runtime.read_index()
                except (errors.NoLeaderError, errors.NotLeaderError):
                    await self._wait_role_change()
                    continue
                with anyio.move_on_after(2 * self._options.election_timeout):
                    try:
                        index = await pending.wait()
                    except errors.ReadFailedError:
                        continue
                    await runtime.applied.wait_for(index)
                    return
                runtime.forget(pending)
        raise errors.CallTimeoutError(
            f"no leader confirmed a linearizable read within {limit:.1f}s", outcome_known=True
        )

    # ------------------------------------------------------------------ cluster

    def status(self) -> NodeStatus:
        """Role, term, leader, members, commit/applied indexes and, on the leader, peer lag."""
        raft = self.runtime.raft
        status = raft.status()
        peers = {
            peer: PeerLag(p.match_index, status.last_index - p.match_index, p.state)
            for peer, p in status.peers.items()
        }
        return NodeStatus(
            id=self.id,
            role=status.role.value,
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
        )

    async def wait_for_leader(self, timeout: float | None = None) -> NodeId:
        """The leader's id, once one is known.

        :raises ~replobj.errors.CallTimeoutError: if none is elected in time.
        """
        limit = timeout or self.call_timeout
        with anyio.move_on_after(limit):
            while self.runtime.raft.leader is None:
                await self._wait_role_change()
            leader = self.runtime.raft.leader
            assert leader is not None
            return leader
        raise errors.CallTimeoutError(f"no leader elected within {limit:.1f}s", outcome_known=True)

    async def add_member(
        self, node_id: NodeId, address: str, *, timeout: float | None = None
    ) -> None:
        """Add ``node_id`` (listening at ``address``); returns once it is a voter.

        The node must be started with ``join=True``. It first replicates as a learner and
        is promoted automatically once caught up (joint consensus).

        :raises ~replobj.errors.CallTimeoutError: if it did not become a voter in time (it
            stays scheduled: it is promoted as soon as it catches up).
        """
        parse_address(address)
        await self._directory_call("add_member", (node_id, address), timeout)
        await self._wait_config(
            lambda c: node_id in c.voters and not c.is_joint,
            timeout,
            f"{node_id!r} to become a voter",
        )

    async def remove_member(self, node_id: NodeId, *, timeout: float | None = None) -> None:
        """Remove ``node_id`` (any member, the leader included); returns once it is out."""
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

        :raises ~replobj.errors.UnpicklableStateError: if an object's state cannot be
            pickled (the node keeps its log and serves on).
        """
        meta = self.runtime.take_snapshot()
        return meta.last_index if meta else self.runtime.raft.snapshot.last_index

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
        known: dict[NodeId, str] = {}
        while True:
            await anyio.sleep(self._options.heartbeat_interval)
            runtime = self.runtime
            addresses = self._addresses()
            if addresses != known and self._transport is not None:
                known = addresses
                self._transport.update_peers(
                    {n: parse_address(a) for n, a in addresses.items() if n != self.id}
                )
            if runtime.raft.role is Role.LEADER:
                self._register_addresses(runtime)
                self._reconcile_membership(runtime)

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
        for node_id in sorted(set(directory.wanted()) - config.members):
            if runtime.raft.add_member(node_id):
                logger.info("%s: adding %s as a learner", self.id, node_id)
                runtime.kick()
            return
        for node_id in sorted(directory.removed & config.members):
            if runtime.raft.remove_member(node_id):
                logger.info("%s: removing %s", self.id, node_id)
                runtime.kick()
            return
