"""``Node``: one member of a replobj cluster, embedded in the application's process.

A node owns a Raft core, its storage, its transport, the runtime that drives them and
the state machine holding the attached objects. It is used as an async context
manager; calls on attached objects go through :mod:`replobj.proxy`.

This module holds the node's construction, lifecycle and the applying of entries; the
rest of :class:`Node` comes from its bases: :mod:`replobj.node_calls` (commands and
reads) and :mod:`replobj.node_cluster` (status, leadership, membership, snapshots).
:class:`~replobj.node_status.NodeStatus` lives in :mod:`replobj.node_status`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.abc

from . import errors
from . import node_checks as checks
from .call_room import CallRoom
from .command import (
    PACKED_TAG,
    Command,
    decode_commands,
    decode_packed_command,
    new_client_id,
    pack_commands,
    stamp_command,
    unpack_commands,
)
from .directory import DIRECTORY_NAME, ClusterDirectory
from .identity import IdentityCheckedSnapshots, IdentityKeeper
from .metrics import LatencyHistogram
from .node_cluster import ClusterOperations, parse_address
from .node_lifecycle import RUNNING_NODES, Lifecycle, leave_task_group, open_store
from .node_recovery import force_new_cluster
from .node_status import NodeStatus, PeerLag
from .proxy import ObjectProxy
from .raft.node import RaftNode
from .raft.options import RaftOptions, RestoredState
from .raft.types import ClusterConfig, Entry, LogIndex, NodeId, SnapshotMeta
from .replicated import spec_of
from .runtime import RaftRuntime, RuntimeOptions
from .secret import check_secret
from .statemachine import ApplyOutcome, StateMachine
from .storage.protocol import Storage
from .transport.base import Transport
from .transport.tcp import TcpTransport
from .transport.udp import UdpTransport
from .watch import Watcher, WatchFeed

__all__ = ["Node", "NodeStatus", "PeerLag", "parse_address"]

logger = logging.getLogger("replobj")

_T = TypeVar("_T")

_MESSAGE_MARGIN = 1024
"""Bytes of a message kept for headers, so entry batches and snapshot chunks fit the transport."""

_WATCH_COMMANDS = 100_000
"""Commands kept at most for watchers that have not read them (beyond ``watch_history``)."""

_WATCH_BYTES = 64 << 20
"""Payload bytes kept at most for watchers (see ``watch_history``)."""

_PACK_LIMIT = 256 * 1024
"""Largest entry the calls submitted together are packed into (smaller if the transport's is)."""


class Node(ClusterOperations):
    """One member of a replicated-object cluster.

    :param node_id: this member's stable name.
    :param listen: ``"host:port"`` to listen on (loopback or the address peers use).
    :param peers: every founding member's address, this node included, to bootstrap a
        new cluster; on restart the stored membership wins (a mismatch is logged).
    :param data_dir: where the RocksDB store lives; ``None`` keeps everything in memory
        (nothing survives a restart).
    :param secret: the cluster secret, the same on every member: at least 16 bytes
        (:func:`replobj.new_secret` makes one). Required: commands carry pickles, so a
        node anyone can connect to runs anyone's code.
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
    :param snapshot_bytes: or applied payload bytes, whichever comes first (calls made
        together share an entry, so entries alone do not bound the log's size).
    :param call_timeout: default seconds a call may take before
        :class:`~replobj.errors.CallTimeoutError`.
    :param watch_history: applied commands this member keeps for :meth:`watch` to
        resume from (besides what watchers iterating now have not read: at most 100,000
        commands and 64 MiB of payloads); 0 keeps only the latter.
    :param max_pending_calls: the most commands this node's callers may have in flight at
        once (backpressure, :mod:`replobj.call_room`); past it a call waits for room, in
        arrival order, within its timeout (or raises
        :class:`~replobj.errors.TooManyPendingCallsError` at once when called with
        ``nowait=True``).
    :param seed: seed for timeouts' jitter (tests).
    :param wrap_transport: called with the transport before it starts; what it returns is
        used instead (tests wrap it in :class:`~replobj.transport.FaultyTransport` to cut or
        slow this node's links at run time).
    :param tls_server: an :class:`ssl.SSLContext` for accepting members' connections
        (TCP only); members then talk TLS, the secret still authenticates them.
    :param tls_client: an :class:`ssl.SSLContext` for connecting to members (TCP only).
    :raises ~replobj.errors.WeakSecretError: if ``secret`` is missing or too short.
    :raises ~replobj.errors.ConfigurationError: if another parameter is invalid (the
        message names it).
    :param cluster_id: the cluster id this node must belong to (``None``: whichever its
        data directory is stamped with, or the one its cluster fixes). Founders started
        with it fix it as the cluster's id; a directory stamped for another cluster is
        refused with :class:`~replobj.errors.ForeignDataDirError`.
    :param force_new_cluster: disaster recovery only (docs/operations.md, "Disaster
        recovery: a stalled cluster"): restart on this member's own data as the only voter
        of its configuration, committing everything its log holds; the other members are
        then added back. Entries others acknowledged beyond this log are lost.
    :raises ~replobj.errors.ConfigurationError: if ``force_new_cluster`` is combined with
        ``join``.
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
        snapshot_bytes: int = 64 << 20,
        call_timeout: float = 10.0,
        max_pending_calls: int = 10_000,
        watch_history: int = 1_000,
        seed: int | None = None,
        wrap_transport: Callable[[Transport], Transport] | None = None,
        tls_server: ssl.SSLContext | None = None,
        tls_client: ssl.SSLContext | None = None,
        cluster_id: str | None = None,
        force_new_cluster: bool = False,
    ) -> None:
        self.secret = check_secret(secret, parameter="secret")
        self.peers = checks.check_node_parameters(locals())
        self._pinned_cluster_id = cluster_id or ""
        self._identity: IdentityKeeper | None = None
        self.id = node_id
        self.listen = listen
        self.data_dir = data_dir
        self.join = join
        self.force_new_cluster = force_new_cluster
        self.transport_kind = transport
        self._tls = (tls_server, tls_client)
        self.call_timeout = call_timeout
        self._storage = storage
        self._options = RuntimeOptions(
            election_timeout,
            heartbeat_interval,
            snapshot_entries,
            snapshot_bytes=snapshot_bytes,
        )
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
        self._room = CallRoom(max_pending_calls)
        self._latency = LatencyHistogram()
        self._feed = WatchFeed(watch_history, _WATCH_COMMANDS, _WATCH_BYTES)
        self._checked_names: set[tuple[str, str, str]] = set()
        self._runtime: RaftRuntime | None = None
        self._transport: Transport | None = None
        self._outer: anyio.abc.TaskGroup | None = None
        self._stop: anyio.Event | None = None
        self._stopped: anyio.Event | None = None
        self._last_outcome: ApplyOutcome | None = None
        self._restarted = False
        self._member_of: ClusterConfig | None = None
        self._life = Lifecycle(self.id)
        self.diverged: dict[str, errors.ClassMismatchError] = {}
        """Objects whose replica here missed a command because of a class mismatch."""
        self._local_now_blocked = True
        """Whether ``local_now`` must take its slow path (see :meth:`_gate_local_now`)."""

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
        self._life.refuse_if_running()
        self._outer = anyio.create_task_group()
        await self._outer.__aenter__()
        try:
            await self._outer.start(self.serve)
        except BaseException:
            self._outer.cancel_scope.cancel()
            await self._outer.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        outer, self._outer = self._outer, None
        try:
            await self.aclose()
        except BaseException as stopped:  # cancelled because serve failed: raise why
            if outer is None or not await leave_task_group(outer, stopped):
                raise
            return None
        if outer is None:
            return None
        return await leave_task_group(outer, exc)

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the node until :meth:`aclose`; for ``await task_group.start(node.serve)``.

        Several nodes in one task group may then stop in any order.

        :raises ~replobj.errors.StorageError: if the data directory cannot be used.
        :raises ~replobj.errors.TransportError: if the listen address cannot be bound.
        :raises ~replobj.errors.NodeClosedError: if the node is running already.
        """
        if self._life.begin(self.statemachine):  # restarted: forget what the last run learned
            self.diverged.clear()
            self._last_outcome = self._member_of = None
        self._feed.reset()
        self._latency = LatencyHistogram()
        self._stop = anyio.Event()
        self._stopped = anyio.Event()
        watched = RUNNING_NODES.get()  # set by replobj.run: stopped cleanly on Ctrl-C
        try:
            storage = open_store(self.data_dir, self._storage)
        except BaseException:
            self._life.running = False
            self._stopped.set()
            raise
        failed = False
        try:
            where = str(self.data_dir) if self.data_dir is not None else "(not a directory)"
            self._identity = IdentityKeeper(storage, self.id, where, self._pinned_cluster_id)
            self._identity.check_at_start()
            restored = self._restore(storage)
            self._identity.check_cluster(self.directory.cluster_id)
            transport = self._make_transport()
            raft = RaftNode(
                self.id,
                restored,
                self._raft_options(transport.max_message_bytes),
                prepare_payload=self._stamp,
            )
            if self.force_new_cluster:
                force_new_cluster(raft, self.data_dir)
            await transport.start()
            self._transport = transport
            try:
                async with anyio.create_task_group() as tasks:
                    runtime = RaftRuntime(
                        raft,
                        storage,
                        transport,
                        self._apply,
                        IdentityCheckedSnapshots(self.statemachine, self._identity),
                        self._options,
                        seed=self._seed,
                        pack=pack_commands,
                        pack_limit=min(self.max_command_bytes, _PACK_LIMIT),
                    )
                    self._runtime = runtime
                    self._gate_local_now()
                    await tasks.start(runtime.run)
                    self._tasks_group = tasks
                    tasks.start_soon(self._reconcile_loop)
                    logger.info("%s started on %s (term %d)", self.id, self.listen, raft.term)
                    task_status.started()
                    if watched is not None:
                        watched.add(self)
                    await self._stop.wait()
                    if runtime.is_leader and len(runtime.raft.config.voters) > 1:
                        with anyio.move_on_after(self._options.election_timeout):
                            await self.transfer_leadership()
                    tasks.cancel_scope.cancel()
            finally:
                await transport.aclose()
        except BaseException:
            failed = True
            raise
        finally:
            self._runtime = None
            self._gate_local_now()
            self._feed.stop()
            self._transport = None
            if not failed:  # never retry a failed fsync: it may "succeed" with the data lost
                with contextlib.suppress(errors.StorageError):
                    storage.sync()
            try:
                storage.close()
            except errors.StorageError as exc:
                if not failed:
                    raise
                logger.warning("%s: closing its failed storage: %s", self.id, exc)
            self._life.running = False
            if watched is not None:
                watched.discard(self)
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

    def _restore(self, storage: Storage) -> RestoredState:
        restored = storage.load()
        fresh = restored.hard_state.term == 0 and not restored.entries
        fresh = fresh and restored.snapshot.last_index == 0 and not restored.snapshot.config.members
        if fresh and self.force_new_cluster:
            raise errors.ConfigurationError(
                f"force_new_cluster=True but data_dir={self.data_dir!s} is empty: start it on "
                f"the data directory of the most up-to-date surviving member"
            )
        if fresh and not self.join:
            meta = SnapshotMeta(config=ClusterConfig(voters=frozenset(self.peers)))
            writer = storage.begin_snapshot(meta)
            writer.commit()
            return RestoredState.bootstrap(set(self.peers))
        # A joining node may be a wiped member that served newer reads before: catch up first.
        self._restarted = self.join or bool(restored.entries) or restored.snapshot.last_index > 0
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
        peers = {n: a for n, a in self._addresses().items() if n != self.id}
        transport: Transport
        if self.transport_kind == "udp":
            transport = UdpTransport(
                self.id, listen, peers, secret=self.secret, cluster_id=lambda: self.cluster_id
            )
        else:
            server_ssl, client_ssl = self._tls
            transport = TcpTransport(
                self.id,
                listen,
                peers,
                secret=self.secret,
                server_ssl=server_ssl,
                client_ssl=client_ssl,
                cluster_id=lambda: self.cluster_id,
            )
        return transport if self._wrap_transport is None else self._wrap_transport(transport)

    def _raft_options(self, max_message_bytes: int) -> RaftOptions:
        budget = max(1024, max_message_bytes - _MESSAGE_MARGIN)
        self.max_command_bytes = budget - 64
        return RaftOptions(
            election_ticks=self._options.election_ticks,
            max_append_bytes=min(1 << 20, budget),
            snapshot_chunk_bytes=min(self._options.snapshot_chunk_bytes, budget),
        )

    @staticmethod
    def _stamp(payload: bytes) -> bytes:
        return stamp_command(payload, time.time())

    def _apply(self, entry: Entry, local: object) -> object:
        mine = local if isinstance(local, Command | tuple) else None
        outcome = self.statemachine.apply(entry, mine)
        self._feed.record(entry, outcome)
        if outcome.error is not None:
            logger.error(
                "%s: entry %d is not a valid command: %s", self.id, entry.index, outcome.error
            )
        for result in outcome.commands:
            if result.error is not None and isinstance(result.error, errors.ClassMismatchError):
                self._record_divergence(entry, outcome)
                break
        return outcome

    def watch(self, name: str, since: LogIndex | None = None) -> Watcher:
        """The commands applied to the object attached as ``name`` on this member, in log
        order: ``async for change in node.watch("kv", since=index)`` (see
        :mod:`replobj.watch`). It waits for new ones once it has caught up, and ends with
        :class:`~replobj.errors.NodeStoppedError` when the node stops.

        :param since: the first log index to report (e.g. ``last.index + 1`` to resume,
            on any member); ``None``: from the next entry applied.
        :raises ~replobj.errors.UnknownObjectError: if nothing is attached as ``name``.
        :raises ~replobj.errors.ConfigurationError: if ``since`` is not an int >= 1.
        :raises ~replobj.errors.WatchCompactedError: when iterated, if ``since`` is older
            than this member's watch history (``oldest`` says from where it can resume).
        """
        if name not in self.statemachine.objects:
            attached = ", ".join(map(repr, sorted(self.statemachine.objects))) or "none"
            raise errors.UnknownObjectError(
                f"watch({name!r}): nothing is attached as {name!r} on node {self.id!r} "
                f"(attached: {attached})"
            )
        if since is not None and (type(since) is not int or since < 1):
            raise errors.ConfigurationError(
                f"watch(since=...): a log index >= 1 (e.g. a change's index + 1) or None, "
                f"got {since!r}"
            )
        return self._feed.changes(name, since, node_id=self.id)

    def _record_divergence(self, entry: Entry, outcome: ApplyOutcome) -> None:
        payload = entry.payload
        packed = unpack_commands(payload) if payload[0] == PACKED_TAG else None
        decoded = decode_commands(payload) if packed is None else ()
        for position, result in enumerate(outcome.commands):
            if not isinstance(result.error, errors.ClassMismatchError):
                continue
            if packed is None:
                cmd = decoded[position]
            else:
                cmd = decode_packed_command(packed[1][position], packed[0])
            self.diverged.setdefault(cmd.object_name, result.error)
            self._gate_local_now()
            logger.error(
                "%s: entry %d did not apply here: %s (this replica of %r has diverged)",
                self.id,
                entry.index,
                result.error,
                cmd.object_name,
            )

    # ------------------------------------------------------------------ transport

    @property
    def transport(self) -> Transport | None:
        """The running transport (as returned by ``wrap_transport``), ``None`` when stopped."""
        return self._transport
