"""The discrete-event simulator: a clock, an event heap, nodes, network and checks.

Everything random comes from one ``random.Random(seed)``, and nothing iterates over an
unordered set, so a seed replays exactly (run with ``PYTHONHASHSEED=0`` in case the
core's own iteration order depends on string hashing).
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from replobj.raft import (
    Entry,
    EntryKind,
    LogIndex,
    NodeId,
    ProposalId,
    RaftOptions,
    RestoredState,
    SnapshotMeta,
    Term,
)
from replobj.raft import actions as act
from replobj.raft import messages as msg

from .checks import SafetyChecker, SafetyViolation
from .machine import HashChainMachine
from .network import Network, NetworkFaults
from .simnode import SimNode
from .trace import TraceRecord, format_record


@dataclass(frozen=True, slots=True)
class SimParams:
    """Time constants and tunables of one simulated cluster (times in ticks)."""

    heartbeat_ticks: int = 10
    fsync_min: int = 1
    fsync_max: int = 8
    snapshot_every: int = 50
    """Take a snapshot once this many entries were applied since the last one."""
    coalesce_reports: bool = False
    """Group commit: one fsync makes every issued append durable; only the last is reported."""
    install_delay_max: int = 0
    """Tell the core about an installed snapshot up to this many ticks later (0: at once)."""
    options: RaftOptions = field(default_factory=RaftOptions)

    @property
    def election_ticks(self) -> int:
        """The base election timeout T; timeouts are drawn uniformly from [T, 2T)."""
        return self.heartbeat_ticks * self.options.election_ticks


class SimulationFailure(AssertionError):
    """A run broke a check or the core raised; the message says how to replay it."""


@dataclass(frozen=True, slots=True)
class Proposal:
    """A payload some node accepted as leader, remembered to check its final status."""

    node: NodeId
    incarnation: int
    proposal: ProposalId
    payload: bytes


@dataclass(slots=True)
class PendingRead:
    """A read handed to ``read_index`` and the commit index it must cover."""

    node: NodeId
    required: LogIndex
    asked_at: int


@dataclass(slots=True)
class SimStats:
    """Counters reported at the end of a run."""

    events: int = 0
    proposals: int = 0
    reads_ready: int = 0
    reads_failed: int = 0
    snapshots_taken: int = 0
    snapshots_installed: int = 0
    crashes: int = 0


class SimEngine:
    """The event loop and the driver of every node; :class:`SimCluster` adds the client calls."""

    def __init__(
        self,
        seed: int,
        voters: list[NodeId],
        params: SimParams | None = None,
        faults: NetworkFaults | None = None,
        *,
        replay: str | None = None,
        verbose: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self.seed = seed
        self.rng = rng or random.Random(seed)
        self.params = params or SimParams()
        self.network = Network(self.rng, faults or NetworkFaults())
        self.checker = SafetyChecker()
        self.stats = SimStats()
        self.replay = replay or f".venv/bin/python -m replobj.sim --seed {seed} -v"
        self.verbose = verbose
        self.trace: deque[TraceRecord] = deque(maxlen=120)
        self.now = 0
        self.nodes: dict[NodeId, SimNode] = {}
        self.reads: dict[int, PendingRead] = {}
        self.answered: dict[int, bool] = {}
        """Read id -> True (ReadReady) or False (ReadFailed)."""
        self.proposals: list[Proposal] = []
        self.retired: set[NodeId] = set()
        self.intercept: Callable[[NodeId, NodeId, msg.Message], msg.Message | None] | None = None
        """A test's message hook: returns the message to send instead (None: drop it)."""
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = 0
        self._read_ids = 0
        bootstrap = RestoredState.bootstrap(set(voters))
        for node_id in sorted(voters):
            self._start(SimNode(node_id, bootstrap, self.params.options))

    # --- event loop -------------------------------------------------------------------

    def at(self, time: int, callback: Callable[[], None]) -> None:
        """Run ``callback`` at simulated ``time`` (not before now)."""
        self._seq += 1
        heapq.heappush(self._queue, (max(time, self.now), self._seq, callback))

    def run_until(self, time: int) -> None:
        """Process every event up to ``time``; then the clock reads ``time``.

        :raises SimulationFailure: on any safety violation or exception from the core.
        """
        queue = self._queue
        while queue and queue[0][0] <= time:
            when, _, callback = heapq.heappop(queue)
            self.now = when
            self.stats.events += 1
            self.guarded(callback)
        self.now = max(self.now, time)

    def guarded(self, call: Callable[[], None]) -> None:
        """Run ``call``, turning a broken check or a core exception into a replayable failure.

        :raises SimulationFailure: naming the seed, the replay command and the last events.
        """
        try:
            call()
        except SimulationFailure:
            raise
        except AssertionError as exc:
            raise self.failure(str(exc)) from exc
        except Exception as exc:
            raise self.failure(f"the core raised {type(exc).__name__}: {exc}") from exc

    def drive(self, node: SimNode) -> None:
        """Execute ``node``'s pending actions (after a direct call on its core) and check it."""
        self.guarded(lambda: self._drive(node))

    def run_until_true(self, condition: Callable[[], bool], deadline: int, step: int) -> bool:
        """Run in steps of ``step`` ticks until ``condition()`` holds or ``deadline`` passes."""
        while not condition():
            if self.now >= deadline:
                return False
            self.run_until(min(self.now + step, deadline))
        return True

    def failure(self, what: str) -> SimulationFailure:
        """Build the error for a failed run: seed, replay command and the last events."""
        tail = "\n".join(format_record(r) for r in list(self.trace)[-40:])
        return SimulationFailure(
            f"simulation seed {self.seed} failed at t={self.now}: {what}\n"
            f"replay: {self.replay}\nlast events:\n{tail}"
        )

    def note(self, node: str, what: str, detail: object) -> None:
        """Add a line to the trace (printed at once when verbose)."""
        record = (self.now, node, what, detail)
        self.trace.append(record)
        if self.verbose:
            print(format_record(record))

    # --- driving one node -------------------------------------------------------------

    def _start(self, node: SimNode) -> None:
        self.nodes[node.id] = node
        self.note(node.id, "start", f"incarnation {node.incarnation}")
        self.drive(node)

    def _drive(self, node: SimNode) -> None:
        raft = node.raft
        actions = raft.take_actions()
        while actions:
            self._execute(node, actions)
            actions = raft.take_actions()
        self.checker.observe(node)

    def _execute(self, node: SimNode, actions: list[act.Action]) -> None:
        sends: list[act.Send] = []
        installed: tuple[SnapshotMeta, bytes] | None = None
        applied = False
        reconfigure = False
        for action in actions:
            kind = type(action)
            if kind is act.Send:
                assert isinstance(action, act.Send)
                sends.append(action)
                continue
            if sends:
                self._flush(node, sends)
                sends = []
            if isinstance(action, act.SaveHardState):
                node.storage.hard_state = action.hard_state
            elif isinstance(action, act.AppendLog):
                reconfigure = reconfigure or self._append(node, action.entries)
            elif isinstance(action, act.ResetTimer):
                self._arm_timer(node, action.kind)
            elif isinstance(action, act.ApplyEntries):
                for entry in action.entries:
                    self.checker.on_apply(node, entry)
                    node.machine.apply(entry)
                self.checker.after_apply(node)
                applied = True
            elif isinstance(action, act.ReadReady):
                self._read_ready(node, action)
            elif isinstance(action, act.ReadFailed):
                self.reads.pop(action.request_id, None)
                self.answered[action.request_id] = False
                self.stats.reads_failed += 1
            elif isinstance(action, act.SendSnapshotChunk):
                self._send_chunk(node, action)
            elif isinstance(action, act.WriteSnapshotChunk):
                node.storage.stage_chunk(action.meta, action.offset, action.data)
            elif isinstance(action, act.InstallSnapshot):
                installed = (action.meta, self._install(node, action))
            elif isinstance(action, act.CompactLog):
                node.storage.compact(action.upto)
            elif isinstance(action, act.ElectionStalled):
                self.note(node.id, "stalled", action.stall.describe() if action.stall else "over")
            elif isinstance(action, act.RoleChanged):
                self.note(
                    node.id,
                    "role",
                    f"{action.role.value} term={action.term} leader={action.leader}",
                )
        if sends:
            self._flush(node, sends)
        if installed is not None:
            meta, data = installed
            if self.params.install_delay_max:
                delay = self.rng.randint(1, self.params.install_delay_max)
                done = partial(self._installed, node, node.incarnation, meta, data, True)
                self.at(self.now + delay, done)
            else:
                self._installed(node, node.incarnation, meta, data, False)
        if reconfigure:
            self.checker.check_config(node)
        if applied:
            self._maybe_snapshot(node)

    def _flush(self, node: SimNode, sends: list[act.Send]) -> None:
        sends.sort(key=_destination)
        for send in sends:
            self._transmit(node.id, send.to, send.message)

    def _transmit(self, src: NodeId, dst: NodeId, message: msg.Message) -> None:
        if self.intercept is not None:
            replaced = self.intercept(src, dst, message)
            if replaced is None:
                return
            message = replaced
        for delay in self.network.delays(src, dst):
            self.at(self.now + delay, partial(self._deliver, src, dst, message))

    def _deliver(self, src: NodeId, dst: NodeId, message: msg.Message) -> None:
        node = self.nodes.get(dst)
        if node is None or not node.alive or self.network.is_blocked(src, dst):
            return
        self.note(dst, "recv", message)
        node.raft.handle_message(message)
        self._drive(node)

    def _append(self, node: SimNode, entries: tuple[Entry, ...]) -> bool:
        """Issue an unsynced write; True if it may change the configuration in effect."""
        if not entries:
            return False
        storage = node.storage
        reconfigure = entries[0].index <= storage.written.last_index or any(
            e.kind is EntryKind.CONFIG for e in entries
        )
        prev: Term | None = storage.written.term_at(entries[0].index - 1)
        if entries[0].index - 1 == storage.snapshot_meta.last_index:
            prev = storage.snapshot_meta.last_term
        self.checker.on_append(node, entries, prev)
        seq = storage.append(entries)
        params = self.params
        done = max(node.fsync_tail, self.now + self.rng.randint(params.fsync_min, params.fsync_max))
        node.fsync_tail = done
        self.at(done, partial(self._fsynced, node, node.incarnation, seq))
        return reconfigure

    def _fsynced(self, node: SimNode, incarnation: int, seq: int) -> None:
        if not node.alive or node.incarnation != incarnation:
            return
        if self.params.coalesce_reports:
            done = node.storage.sync_through(node.storage.next_seq)[-1:]
        else:
            done = node.storage.sync_through(seq)
        for op in done:
            last = op.entries[-1]
            node.raft.handle_log_persisted(last.index, last.term)
        self._drive(node)

    def _arm_timer(self, node: SimNode, kind: act.TimerKind) -> None:
        if kind is act.TimerKind.HEARTBEAT:
            duration = self.params.heartbeat_ticks
        else:
            base = self.params.election_ticks
            duration = self.rng.randrange(base, 2 * base)
        node.timer_deadline = self.now + duration
        if node.timer_at < 0 or node.timer_at > node.timer_deadline:
            node.timer_at = node.timer_deadline
            self.at(node.timer_at, partial(self._timer, node, node.incarnation, node.timer_at))

    def _timer(self, node: SimNode, incarnation: int, at: int) -> None:
        if not node.alive or node.incarnation != incarnation or node.timer_at != at:
            return
        if self.now < node.timer_deadline:
            node.timer_at = node.timer_deadline
            self.at(node.timer_at, partial(self._timer, node, incarnation, node.timer_at))
            return
        node.timer_at = -1
        self.note(node.id, "timeout", node.raft.role.value)
        node.raft.handle_timeout()
        self._drive(node)

    def _read_ready(self, node: SimNode, action: act.ReadReady) -> None:
        pending = self.reads.pop(action.request_id, None)
        if pending is None:
            return
        if pending.node != node.id:
            raise SafetyViolation(
                "Linearizable read",
                f"read {action.request_id} asked on {pending.node} answered on {node.id}",
            )
        self.checker.check_read(node, action.read_index, pending.required)
        self.answered[action.request_id] = True
        self.stats.reads_ready += 1

    def _send_chunk(self, node: SimNode, action: act.SendSnapshotChunk) -> None:
        storage = node.storage
        if storage.snapshot_meta != action.meta:
            return
        data = storage.snapshot_data[action.offset : action.offset + action.max_bytes]
        done = action.offset + len(data) >= len(storage.snapshot_data)
        message = msg.InstallSnapshot(
            action.term, action.sender, action.meta, action.offset, data, done, action.seq
        )
        self.note(node.id, "chunk", message)
        self._transmit(node.id, action.to, message)

    def _install(self, node: SimNode, action: act.InstallSnapshot) -> bytes:
        self.stats.snapshots_installed += 1
        self.note(node.id, "install", action.meta)
        return node.storage.install_staged(action.meta, action.keep_log)

    def _installed(
        self, node: SimNode, incarnation: int, meta: SnapshotMeta, data: bytes, delayed: bool
    ) -> None:
        if not node.alive or node.incarnation != incarnation:
            return
        node.machine = HashChainMachine.restore(data)
        self.checker.on_snapshot_restored(node, meta, installed=True)
        node.raft.handle_snapshot_installed(meta)
        if delayed:
            self._drive(node)

    def _maybe_snapshot(self, node: SimNode) -> None:
        applied = node.machine.applied_index
        if applied - node.storage.snapshot_meta.last_index < self.params.snapshot_every:
            return
        meta = node.raft.snapshot_meta_for(applied)
        node.storage.save_snapshot(meta, node.machine.serialise())
        self.stats.snapshots_taken += 1
        self.note(node.id, "snapshot", meta)
        node.raft.handle_snapshot_taken(meta)


def _destination(send: act.Send) -> NodeId:
    return send.to
