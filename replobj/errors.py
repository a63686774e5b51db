"""Every exception replobj raises.

All subclass :class:`ReplObjError`; errors from the environment also subclass the
fitting builtin (``OSError``, ``TimeoutError``) so generic handlers keep working.
Each message says what happened and what to do next.
"""

from __future__ import annotations

from .raft.types import Refusal, RefusalReason

__all__ = [
    "ApplyOrderError",
    "AttachAfterStartError",
    "AttachError",
    "AuthenticationError",
    "BatteryError",
    "CallTimeoutError",
    "ClassMismatchError",
    "ClusterMismatchError",
    "ClusterStalledError",
    "CommandTooLargeError",
    "ConfigChangeInProgressError",
    "ConfigurationError",
    "CorruptCommandError",
    "CorruptSnapshotError",
    "CorruptStorageError",
    "ForeignDataDirError",
    "FrameTooLargeError",
    "IncompatibleStorageError",
    "InvalidConfigChangeError",
    "InvalidMemberError",
    "LeaderNotReadyError",
    "LocalReadNotReadyError",
    "LockHeldError",
    "NoCurrentEntryError",
    "NoLeaderError",
    "NoPermitError",
    "NodeClosedError",
    "NodeRemovedError",
    "NodeStoppedError",
    "NotACommandError",
    "NotAQueryError",
    "NotAStoreError",
    "NotHolderError",
    "NotLeaderError",
    "NotReplicatedError",
    "ProtocolError",
    "QueueEmptyError",
    "RaftRefusedError",
    "ReadFailedError",
    "ReplObjError",
    "ReplicatedClassError",
    "ReplicatedObjectError",
    "SnapshotAbandonedError",
    "StaleCommandError",
    "StorageError",
    "TooManyPendingCallsError",
    "TransferInProgressError",
    "TransportError",
    "UnknownMethodError",
    "UnknownObjectError",
    "UnpicklableArgumentError",
    "UnpicklableStateError",
    "UnusableDataDirError",
    "VersionMismatchError",
    "WatchCompactedError",
    "WeakSecretError",
    "WrongThreadError",
    "error_for_refusal",
]


class ReplObjError(Exception):
    """Base class of every replobj exception."""


# --- Raft refusals -------------------------------------------------------------------


class RaftRefusedError(ReplObjError):
    """The Raft core declined a request; nothing changed. ``refusal`` holds the details."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal

    @property
    def leader(self) -> str | None:
        """The leader this node knows of, if any (where to send the request instead)."""
        return self.refusal.leader


class NotLeaderError(RaftRefusedError):
    """Only the leader accepts this request; retry on :attr:`leader`."""


class NoLeaderError(RaftRefusedError):
    """No leader is known (an election is under way or no quorum is reachable); retry later."""


class LeaderNotReadyError(RaftRefusedError):
    """The leader has not yet committed an entry of its term; retry in a moment."""


class ConfigChangeInProgressError(RaftRefusedError):
    """A membership change is still in flight; wait for it to finish, then retry."""


class InvalidConfigChangeError(RaftRefusedError):
    """The membership change makes no sense (unknown member, last voter, ...); fix the request."""


class TransferInProgressError(RaftRefusedError):
    """A leadership transfer is under way; retry once the new leader is known."""


_REFUSAL_ERRORS: dict[RefusalReason, type[RaftRefusedError]] = {
    RefusalReason.NOT_LEADER: NotLeaderError,
    RefusalReason.NO_LEADER: NoLeaderError,
    RefusalReason.LEADER_NOT_READY: LeaderNotReadyError,
    RefusalReason.CONFIG_CHANGE_IN_PROGRESS: ConfigChangeInProgressError,
    RefusalReason.INVALID_CONFIG_CHANGE: InvalidConfigChangeError,
    RefusalReason.TRANSFER_IN_PROGRESS: TransferInProgressError,
    RefusalReason.INVALID_ARGUMENT: RaftRefusedError,
}


def error_for_refusal(refusal: Refusal) -> RaftRefusedError:
    """The exception that reports ``refusal`` to a caller."""
    return _REFUSAL_ERRORS[refusal.reason](refusal)


# --- configuration -------------------------------------------------------------------


class ConfigurationError(ReplObjError, ValueError):
    """A parameter is invalid; the message names the parameter and what it accepts."""


class WeakSecretError(ConfigurationError):
    """The cluster secret is missing or shorter than 16 bytes; the message says how to make one."""


class InvalidMemberError(ConfigurationError):
    """A member id or address given to ``add_member``/``remove_member`` is unusable; nothing
    was proposed."""


# --- storage ---------------------------------------------------------------------------


class StorageError(ReplObjError, OSError):
    """The durable store failed; the node cannot continue safely on this data directory."""


class CorruptStorageError(StorageError):
    """Stored data failed its checksum or could not be decoded; restore the node from a peer."""


class NotAStoreError(StorageError):
    """The directory holds something that is not a replobj store; nothing was changed."""


class IncompatibleStorageError(StorageError):
    """The store was written by an incompatible format version; nothing was changed."""


class ForeignDataDirError(StorageError):
    """The data directory is stamped for another member or another cluster; nothing was changed.

    The message names the stamped and the expected ids; see docs/operations.md ("Moving a
    member's data") for moving a directory on purpose.
    """


class UnusableDataDirError(StorageError):
    """The data directory cannot be created, read or written (permissions, read-only, not a
    directory); the message names the path and what to fix."""


# --- transport -------------------------------------------------------------------------


class TransportError(ReplObjError, OSError):
    """A network operation failed (bind, connect, send)."""


class ProtocolError(ReplObjError):
    """A peer sent bytes that are not a valid replobj frame or message."""


class FrameTooLargeError(ProtocolError):
    """A frame announced more bytes than the configured maximum; the connection was closed."""


class AuthenticationError(TransportError):
    """The peer did not prove it holds the cluster secret (or we could not); check ``secret``."""


class VersionMismatchError(TransportError):
    """The peer speaks another wire version or runs another Python minor version."""


class ClusterMismatchError(TransportError):
    """The peer belongs to another cluster (its cluster id differs); the link was refused.

    The message names both cluster ids; check the address book and the data directories.
    """


# --- runtime and calls ------------------------------------------------------------------


class ReadFailedError(ReplObjError):
    """A linearizable read could not be confirmed (leadership changed); retry it."""


class CallTimeoutError(ReplObjError, TimeoutError):
    """A call did not finish in time. ``outcome_known`` says whether it surely did not apply.

    When ``outcome_known`` is false the command may still apply later (it reached the
    log); retrying it through the same proxy is safe: it applies at most once.
    """

    def __init__(self, message: str, *, outcome_known: bool) -> None:
        super().__init__(message)
        self.outcome_known = outcome_known


class ClusterStalledError(CallTimeoutError):
    """A call timed out because no leader can be elected: voters that rejoined empty withhold
    their votes and leave no quorum. The message names each survivor's last index and points
    to the disaster-recovery path in docs/operations.md ("Disaster recovery: a stalled
    cluster"). A :class:`CallTimeoutError`, so existing handlers keep working."""


class TooManyPendingCallsError(ReplObjError, RuntimeError):
    """A call made with ``nowait=True`` found the node at its ``max_pending_calls`` bound;
    nothing was sent. Retry later, or let calls wait for room (the default)."""


class WatchCompactedError(ReplObjError, LookupError):
    """``node.watch(name, since=index)`` asked for entries older than this member's watch
    history (or a watcher fell that far behind). ``oldest`` is the lowest index available:
    resume from there, after reloading the object's state with a read if you need it."""

    def __init__(self, message: str, *, oldest: int) -> None:
        super().__init__(message)
        self.oldest = oldest


class CommandTooLargeError(ReplObjError, ValueError):
    """A command's encoded arguments exceed what one message may carry; nothing was sent."""


class NodeRemovedError(ReplObjError, RuntimeError):
    """This node was removed from the cluster; it no longer receives the log. Stop it, or
    add it back with ``add_member`` from a member."""


class NodeClosedError(ReplObjError, RuntimeError):
    """The node was used in a way its lifecycle does not allow (e.g. started twice at once)."""


class NodeStoppedError(ReplObjError, RuntimeError):
    """The node is not running (not started yet, closing, or stopped after a fatal error)."""


class LocalReadNotReadyError(ReplObjError, RuntimeError):
    """``proxy.query.local_now()`` cannot answer yet: the node has (re)started and not yet
    passed the one ReadIndex barrier that keeps local reads from going backwards. Await
    ``proxy.query.local(...)`` once, or ``node.local_read_ready()``, then call it again."""


class WrongThreadError(ReplObjError, RuntimeError):
    """The call reads the replicated objects directly and must run on the node's event-loop
    thread; from another thread it would race with the commands being applied there (as
    ``BlockingNode``'s callers would). Use the call that crosses into that thread instead."""


# --- objects and commands --------------------------------------------------------------


class ReplicatedObjectError(ReplObjError):
    """A problem with a replicated class, an attached object, a command or a snapshot of them."""


class ReplicatedClassError(ReplicatedObjectError, TypeError):
    """``@replicated``, ``@query`` or ``@command`` rejected the class; fix what the message says."""


class NotReplicatedError(ReplicatedObjectError, TypeError):
    """The class (or the object's class) is not decorated with ``@replobj.replicated``."""


class AttachError(ReplicatedObjectError, ValueError):
    """The object cannot be attached under that name (empty name, name already used)."""


class AttachAfterStartError(ReplicatedObjectError, RuntimeError):
    """Objects are attached before the node starts; attach every object, then start the node."""


class UnknownObjectError(ReplicatedObjectError, LookupError):
    """No object is attached under that name here; attach the same names on every node."""


class UnknownMethodError(ReplicatedObjectError, AttributeError):
    """The method is not a command or query of the attached class; run the same code everywhere."""


class NotAQueryError(ReplicatedObjectError, TypeError):
    """A command was called as a local query; commands go through the log (call the proxy)."""


class NotACommandError(ReplicatedObjectError, TypeError):
    """A query was asked for a command's form (``.indexed()``): queries enter no log entry."""


class ClassMismatchError(ReplicatedObjectError, TypeError):
    """The command (or snapshot) was made for another class than the one attached here."""


class UnpicklableArgumentError(ReplicatedObjectError, TypeError):
    """A command argument cannot be pickled (nor cloudpickled); pass plain data instead."""


class UnpicklableStateError(ReplicatedObjectError, TypeError):
    """An object's state (or a kept result) cannot be pickled into a snapshot."""


class CorruptCommandError(ReplicatedObjectError, ValueError):
    """A command payload could not be decoded (garbage, or code that differs between nodes)."""


class CorruptSnapshotError(ReplicatedObjectError, ValueError):
    """Snapshot bytes could not be decoded or restored; nothing was changed."""


class SnapshotAbandonedError(ReplicatedObjectError):
    """Serialising or decoding a snapshot was stopped because the node stops; it never
    reaches a caller (the runtime raises the cancellation instead)."""


class StaleCommandError(ReplicatedObjectError):
    """The client had already acknowledged this sequence number; the call was not applied again."""


class NoCurrentEntryError(ReplicatedObjectError, RuntimeError):
    """``current_entry()`` was called outside a command being applied."""


class ApplyOrderError(ReplicatedObjectError, ValueError):
    """Entries were fed to the state machine out of order (a runtime bug); nothing was applied."""


# --- batteries (replobj.batteries) ----------------------------------------------------


class BatteryError(ReplObjError):
    """A ready-made replicated type (:mod:`replobj.batteries`) refused a call; the call
    applied as a no-op on every replica (nothing changed)."""


class QueueEmptyError(BatteryError, LookupError):
    """``Queue.pop`` or ``Queue.peek`` found the queue empty; nothing changed. Put an item
    first, or call again later."""

    def __init__(self, queue: str = "the queue") -> None:
        super().__init__(f"{queue} is empty; put an item first, or call again later")
        self.queue = queue

    def __reduce__(self) -> tuple[type[QueueEmptyError], tuple[str]]:
        return type(self), (self.queue,)


class LockHeldError(BatteryError):
    """Another owner holds the lock (or the leadership) until ``expires_at``, in leader time
    (seconds since the epoch on the leaders' clocks); nothing changed. Retry later."""

    def __init__(self, what: str, owner: str, expires_at: float) -> None:
        super().__init__(
            f"{what} is held by {owner!r} until {expires_at:.3f} (leader time); retry "
            "later, or have the holder release it"
        )
        self.what, self.owner, self.expires_at = what, owner, expires_at

    def __reduce__(self) -> tuple[type[LockHeldError], tuple[str, str, float]]:
        return type(self), (self.what, self.owner, self.expires_at)


class NoPermitError(BatteryError):
    """Every permit of the semaphore is held; the first frees at ``expires_at`` (leader
    time) unless released sooner. Nothing changed; retry later."""

    def __init__(self, what: str, permits: int, expires_at: float) -> None:
        super().__init__(
            f"all {permits} permits of {what} are held; the first lease runs out at "
            f"{expires_at:.3f} (leader time); retry later"
        )
        self.what, self.permits, self.expires_at = what, permits, expires_at

    def __reduce__(self) -> tuple[type[NoPermitError], tuple[str, int, float]]:
        return type(self), (self.what, self.permits, self.expires_at)


class NotHolderError(BatteryError):
    """``owner`` with ``token`` does not hold the lease (never did, released it, or it
    expired on leader time); nothing changed. Stop using the protected resource and acquire
    again: the new token fences off whatever the old one still does."""

    def __init__(self, what: str, owner: str, token: int) -> None:
        super().__init__(
            f"{owner!r} with token {token} does not hold {what} (released, expired on leader "
            "time, or never held): stop using the resource and acquire again"
        )
        self.what, self.owner, self.token = what, owner, token

    def __reduce__(self) -> tuple[type[NotHolderError], tuple[str, str, int]]:
        return type(self), (self.what, self.owner, self.token)
