"""A tiny synchronous driver for a few :class:`RaftNode` instances, for scenario tests.

Nothing happens unless the test asks: a message moves only when delivered, an append
becomes durable only when persisted (or at once with ``auto_persist``), a timer fires
only when the test fires it. Every action a node emits is executed the way a correct
driver would, and the driver's obligations are checked on the way (a vote or term is
saved before a message depending on it leaves; a follower acknowledges only entries
that are durable; applied entries are consecutive and never repeated; every node applies
the same entry at an index (State Machine Safety); one leader per term). A violation
raises :class:`ContractViolation` naming the node and action.

Typical use::

    cluster = Cluster(["a", "b", "c"])
    cluster.elect("a")                      # timeouts + network until "a" leads
    cluster.propose("a", b"x")              # flushes AppendLog + AppendEntries
    cluster.deliver(kind=AppendEntries, to="b")
    cluster.persist("b")                    # with auto_persist=False
    cluster.deliver_all()                   # run to quiescence
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from replobj.raft import (
    Action,
    AppendLog,
    ApplyEntries,
    CompactLog,
    ElectionStalled,
    Entry,
    InstallSnapshot,
    LogIndex,
    Message,
    NodeId,
    ProposalFailed,
    ProposalForwarded,
    ProposalId,
    RaftNode,
    RaftOptions,
    ReadFailed,
    ReadReady,
    ResetTimer,
    RestoredState,
    Role,
    RoleChanged,
    SaveHardState,
    Send,
    SendSnapshotChunk,
    SnapshotMeta,
    Term,
    WriteSnapshotChunk,
)
from replobj.raft import messages as msg

from .driver import (
    ContractViolation,
    Store,
    apply_entries,
    check_append,
    check_send,
    decode_state,
    encode_state,
    log_of,
    of_type,
    restored,
    save_hard_state,
    sent,
    stage_chunk,
)

__all__ = [
    "Cluster",
    "ContractViolation",
    "Envelope",
    "Store",
    "log_of",
    "matches",
    "of_type",
    "restored",
    "sent",
]


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message in flight from ``src`` to ``dst``."""

    src: NodeId
    dst: NodeId
    message: Message


EnvelopeFilter = Callable[[Envelope], bool]


def matches(
    env: Envelope,
    *,
    kind: type | tuple[type, ...] | None = None,
    src: NodeId | None = None,
    to: NodeId | None = None,
    where: EnvelopeFilter | None = None,
) -> bool:
    """Whether ``env`` passes every given criterion."""
    if kind is not None and not isinstance(env.message, kind):
        return False
    if src is not None and env.src != src:
        return False
    if to is not None and env.dst != to:
        return False
    return where is None or where(env)


class Cluster:
    """A hand-driven cluster: ``Cluster(["a", "b", "c"])`` bootstraps three voters.

    :param ids: the initial voters (each starts from ``RestoredState.bootstrap``).
    :param joining: nodes started with ``RestoredState.joining()``, to be added later.
    :param options: options for every node.
    :param auto_persist: report every append durable as soon as it is issued.
    :param prepare_payload: passed to every node (a leader's hook on command payloads).
    """

    def __init__(
        self,
        ids: Sequence[NodeId],
        *,
        joining: Sequence[NodeId] = (),
        options: RaftOptions | None = None,
        auto_persist: bool = True,
        prepare_payload: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.options = options or RaftOptions()
        self.prepare_payload = prepare_payload
        self.auto_persist = auto_persist
        self.nodes: dict[NodeId, RaftNode] = {}
        self.stores: dict[NodeId, Store] = {}
        self.network: list[Envelope] = []
        self.down: set[NodeId] = set()
        self.blocked: set[tuple[NodeId, NodeId]] = set()
        self.leaders_by_term: dict[Term, NodeId] = {}
        self.delivered: list[Envelope] = []
        self.applied_at: dict[LogIndex, tuple[NodeId, Entry]] = {}
        for node_id in ids:
            self._start(node_id, RestoredState.bootstrap(set(ids)), Store())
        for node_id in joining:
            self._start(node_id, RestoredState.joining(), Store())

    @classmethod
    def from_states(
        cls,
        states: dict[NodeId, RestoredState],
        *,
        options: RaftOptions | None = None,
        auto_persist: bool = True,
    ) -> Cluster:
        """A cluster whose nodes restart from the given durable states (crafted logs)."""
        cluster = cls([], options=options, auto_persist=auto_persist)
        for node_id, state in states.items():
            cluster._start(node_id, state, Store())
        return cluster

    # --- lifecycle ------------------------------------------------------------------

    def _start(self, node_id: NodeId, restored: RestoredState, store: Store) -> None:
        store.snapshot = restored.snapshot
        store.hard_state = restored.hard_state
        for entry in restored.entries:
            store.log[entry.index] = entry
        store.applied_index = restored.snapshot.last_index
        store.state_machine = decode_state(store.snapshot_data)
        self.stores[node_id] = store
        self.nodes[node_id] = RaftNode(
            node_id, restored, self.options, prepare_payload=self.prepare_payload
        )
        self.down.discard(node_id)
        self.drain(node_id)

    def add_node(self, node_id: NodeId, restored: RestoredState | None = None) -> RaftNode:
        """Start a new node (by default one that will join a running cluster)."""
        self._start(node_id, restored or RestoredState.joining(), Store())
        return self.nodes[node_id]

    def restore(self, node_id: NodeId, restored: RestoredState) -> RaftNode:
        """Replace ``node_id`` by a node restarted from ``restored`` (a crafted durable state)."""
        self._start(node_id, restored, Store())
        return self.nodes[node_id]

    def crash(self, node_id: NodeId) -> None:
        """Stop ``node_id``: appends not yet durable are lost, messages to it are dropped."""
        self.stores[node_id].pending.clear()
        self.stores[node_id].staged_meta = None
        self.down.add(node_id)

    def restart(self, node_id: NodeId, options: RaftOptions | None = None) -> RaftNode:
        """Crash (if running) and restart ``node_id`` from its durable store."""
        self.crash(node_id)
        old = self.stores[node_id]
        store = Store(snapshot_data=old.snapshot_data)
        restored = RestoredState(old.hard_state, old.snapshot, old.durable_entries())
        if options is not None:
            self.options = options
        self._start(node_id, restored, store)
        return self.nodes[node_id]

    # --- driving --------------------------------------------------------------------

    def node(self, node_id: NodeId) -> RaftNode:
        """The running node ``node_id``."""
        return self.nodes[node_id]

    def drain(self, node_id: NodeId) -> list[Action]:
        """Take and execute ``node_id``'s actions until it has none; return them."""
        taken: list[Action] = []
        node = self.nodes[node_id]
        while True:
            actions = node.take_actions()
            if not actions:
                break
            for action in actions:
                self._execute(node_id, action)
            taken.extend(actions)
            if self.auto_persist and self.stores[node_id].pending:
                self.persist(node_id, drain=False)
        self._check_roles(node_id)
        return taken

    def timeout(self, node_id: NodeId) -> list[Action]:
        """Fire ``node_id``'s timer; return the actions it caused."""
        self.nodes[node_id].handle_timeout()
        return self.drain(node_id)

    def persist(self, node_id: NodeId, count: int | None = None, *, drain: bool = True) -> None:
        """Make the first ``count`` (default all) pending appends durable and report them."""
        store = self.stores[node_id]
        batch = list(store.pending if count is None else store.pending[:count])
        del store.pending[: len(batch)]
        for append in batch:
            first = append.entries[0].index
            for index in [i for i in store.log if i >= first]:
                del store.log[index]
            for entry in append.entries:
                store.log[entry.index] = entry
            last = append.entries[-1]
            self.nodes[node_id].handle_log_persisted(last.index, last.term)
        if drain:
            self.drain(node_id)

    def persist_all(self) -> None:
        """Persist every pending append on every running node."""
        for node_id in self.running():
            self.persist(node_id)

    def propose(self, node_id: NodeId, payload: bytes) -> ProposalId:
        """Propose on ``node_id`` (which must accept) and flush."""
        result = self.nodes[node_id].propose(payload)
        assert isinstance(result, ProposalId), f"{node_id} refused proposal: {result}"
        self.drain(node_id)
        return result

    def take_snapshot(self, node_id: NodeId, index: LogIndex | None = None) -> SnapshotMeta:
        """Snapshot ``node_id``'s state machine at ``index`` (default: applied) and compact."""
        node = self.nodes[node_id]
        store = self.stores[node_id]
        upto = store.applied_index if index is None else index
        meta = node.snapshot_meta_for(upto)
        assert meta.last_index == upto, f"snapshot_meta_for({upto}) gave {meta}"
        store.snapshot = meta
        store.snapshot_data = encode_state([(i, p) for i, p in store.state_machine if i <= upto])
        node.handle_snapshot_taken(meta)
        self.drain(node_id)
        return meta

    # --- the network ----------------------------------------------------------------

    def messages(
        self,
        *,
        kind: type | tuple[type, ...] | None = None,
        src: NodeId | None = None,
        to: NodeId | None = None,
        where: EnvelopeFilter | None = None,
    ) -> list[Envelope]:
        """The messages in flight that match (without delivering them)."""
        return [e for e in self.network if matches(e, kind=kind, src=src, to=to, where=where)]

    def drop(
        self,
        *,
        kind: type | tuple[type, ...] | None = None,
        src: NodeId | None = None,
        to: NodeId | None = None,
        where: EnvelopeFilter | None = None,
    ) -> list[Envelope]:
        """Remove the matching messages from the network; return them."""
        dropped = self.messages(kind=kind, src=src, to=to, where=where)
        self.network = [e for e in self.network if e not in dropped]
        return dropped

    def deliver(
        self,
        *,
        kind: type | tuple[type, ...] | None = None,
        src: NodeId | None = None,
        to: NodeId | None = None,
        where: EnvelopeFilter | None = None,
        limit: int | None = None,
    ) -> list[Envelope]:
        """Deliver the matching messages now in flight (not those they cause), in order."""
        chosen = self.messages(kind=kind, src=src, to=to, where=where)[:limit]
        for env in chosen:
            self.network.remove(env)
        for env in chosen:
            self.inject(env)
        return chosen

    def inject(self, env: Envelope) -> None:
        """Hand ``env`` to its destination (unless it is absent, down, or the link is cut)."""
        if env.dst not in self.nodes or env.dst in self.down:
            return
        if (env.src, env.dst) in self.blocked:
            return
        self.delivered.append(env)
        self.nodes[env.dst].handle_message(env.message)
        self.drain(env.dst)

    def send(self, src: NodeId, dst: NodeId, message: Message) -> list[Action]:
        """Deliver a crafted ``message`` to ``dst`` as if ``src`` sent it; return the actions."""
        self.nodes[dst].handle_message(message)
        del src
        return self.drain(dst)

    def deliver_all(
        self,
        *,
        kind: type | tuple[type, ...] | None = None,
        src: NodeId | None = None,
        to: NodeId | None = None,
        where: EnvelopeFilter | None = None,
        max_messages: int = 10_000,
    ) -> int:
        """Deliver matching messages, including those they cause, until none is left."""
        count = 0
        while True:
            batch = self.messages(kind=kind, src=src, to=to, where=where)
            if not batch:
                return count
            env = batch[0]
            self.network.remove(env)
            self.inject(env)
            count += 1
            if count > max_messages:
                raise AssertionError(f"no quiescence after {max_messages} messages")

    def isolate(self, node_id: NodeId) -> None:
        """Cut every link to and from ``node_id`` (messages on cut links are lost)."""
        for other in self.nodes:
            if other != node_id:
                self.blocked.add((node_id, other))
                self.blocked.add((other, node_id))

    def heal(self) -> None:
        """Restore every link."""
        self.blocked.clear()

    # --- scenarios ------------------------------------------------------------------

    def elect(self, node_id: NodeId, attempts: int = 4) -> RaftNode:
        """Run elections until ``node_id`` leads, then one heartbeat round (no-op committed).

        If the first attempt fails (followers still trust a live leader, thesis §4.2.3,
        or already voted in that term), the other followers' election timers are made to
        expire once (their own campaign messages are lost) and ``node_id`` tries again.
        """
        node = self.nodes[node_id]
        for attempt in range(attempts):
            self.timeout(node_id)
            self.deliver_all()
            if node.role is Role.LEADER:
                break
            if attempt == 0:
                self.expire_followers(besides=node_id)
        assert node.role is Role.LEADER, f"{node_id} did not win: {node.status()}"
        self.heartbeat(node_id)
        return node

    def expire_followers(self, besides: NodeId) -> None:
        """Fire the election timer of every other running non-leader, losing what they send."""
        for other in self.running():
            peer = self.nodes[other]
            if other != besides and peer.role is not Role.LEADER:
                self.timeout(other)
                self.drop(src=other)

    def heartbeat(self, leader: NodeId) -> None:
        """Fire the leader's heartbeat timer and run the network to quiescence."""
        self.timeout(leader)
        self.deliver_all()

    def commit(self, leader: NodeId, payloads: Iterable[bytes]) -> list[ProposalId]:
        """Propose ``payloads`` on ``leader``, replicate, and spread the commit index."""
        ids = [self.propose(leader, p) for p in payloads]
        self.deliver_all()
        self.heartbeat(leader)
        return ids

    def leader(self) -> NodeId | None:
        """The running node that is leader in the highest term, if any."""
        leaders = [n for n in self.running() if self.nodes[n].role is Role.LEADER]
        if not leaders:
            return None
        return max(leaders, key=lambda n: self.nodes[n].term)

    def applied_payloads(self, node_id: NodeId) -> list[bytes]:
        """The application payloads ``node_id``'s state machine holds, in order."""
        return [p for _, p in self.stores[node_id].state_machine]

    def trace(self, node_id: NodeId) -> list[Action]:
        """Every action ``node_id`` emitted so far."""
        return self.stores[node_id].trace

    def running(self) -> list[NodeId]:
        """The nodes that are not crashed."""
        return [n for n in self.nodes if n not in self.down]

    # --- executing actions (with contract checks) -------------------------------------

    def _execute(self, node_id: NodeId, action: Action) -> None:
        store = self.stores[node_id]
        store.trace.append(action)
        if isinstance(action, SaveHardState):
            save_hard_state(node_id, store, action)
        elif isinstance(action, AppendLog):
            check_append(node_id, action)
            store.pending.append(action)
        elif isinstance(action, Send):
            check_send(self.nodes[node_id], store, action)
            self.network.append(Envelope(node_id, action.to, action.message))
        elif isinstance(action, ResetTimer):
            store.timer = action.kind
        elif isinstance(action, ApplyEntries):
            apply_entries(self.nodes[node_id], store, action)
            self._check_state_machine_safety(node_id, action)
        elif isinstance(action, ReadReady | ReadFailed):
            store.reads.append(action)
        elif isinstance(action, ProposalForwarded | ProposalFailed):
            store.forwarded.append(action)
        elif isinstance(action, SendSnapshotChunk):
            self._send_chunk(node_id, store, action)
        elif isinstance(action, WriteSnapshotChunk):
            stage_chunk(node_id, store, action)
        elif isinstance(action, InstallSnapshot):
            self._install(node_id, store, action)
        elif isinstance(action, CompactLog):
            if action.upto > store.snapshot.last_index:
                raise ContractViolation(f"{node_id}: {action} beyond snapshot {store.snapshot}")
            for index in [i for i in store.log if i <= action.upto]:
                del store.log[index]
        elif isinstance(action, RoleChanged | ElectionStalled):
            pass
        else:  # pragma: no cover - exhaustive
            raise ContractViolation(f"{node_id}: unknown action {action!r}")

    def _send_chunk(self, node_id: NodeId, store: Store, action: SendSnapshotChunk) -> None:
        if action.term > store.hard_state.term:
            raise ContractViolation(f"{node_id}: {action} before saving its term")
        if action.meta != store.snapshot:
            return
        data = store.snapshot_data[action.offset : action.offset + action.max_bytes]
        done = action.offset + len(data) >= len(store.snapshot_data)
        message = msg.InstallSnapshot(
            action.term, action.sender, action.meta, action.offset, data, done, action.seq
        )
        self.network.append(Envelope(node_id, action.to, message))

    def _install(self, node_id: NodeId, store: Store, action: InstallSnapshot) -> None:
        if store.staged_meta != action.meta:
            raise ContractViolation(f"{node_id}: install of unstaged {action.meta}")
        if action.meta.last_index <= store.applied_index:
            raise ContractViolation(
                f"{node_id}: install of {action.meta} would move the state machine back "
                f"from applied index {store.applied_index} (pitfall 18)"
            )
        self.persist(node_id, drain=False)
        store.snapshot = action.meta
        store.snapshot_data = store.staged_data
        store.staged_meta = None
        store.state_machine = decode_state(store.snapshot_data)
        store.applied_index = action.meta.last_index
        keep = action.keep_log
        store.log = {i: e for i, e in store.log.items() if keep and i > action.meta.last_index}
        self.nodes[node_id].handle_snapshot_installed(action.meta)

    def _check_state_machine_safety(self, node_id: NodeId, action: ApplyEntries) -> None:
        for entry in action.entries:
            first = self.applied_at.setdefault(entry.index, (node_id, entry))
            if first[1] != entry:
                raise ContractViolation(
                    f"State Machine Safety: {node_id} applied {entry}, "
                    f"{first[0]} applied {first[1]}"
                )

    def _check_roles(self, node_id: NodeId) -> None:
        node = self.nodes[node_id]
        if node.role is Role.LEADER:
            holder = self.leaders_by_term.setdefault(node.term, node_id)
            if holder != node_id:
                raise ContractViolation(f"two leaders in term {node.term}: {holder}, {node_id}")
