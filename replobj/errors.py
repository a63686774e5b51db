"""Every exception replobj raises.

All subclass :class:`ReplObjError`; errors from the environment also subclass the
fitting builtin (``OSError``, ``TimeoutError``) so generic handlers keep working.
Each message says what happened and what to do next.
"""

from __future__ import annotations

from .raft.types import Refusal, RefusalReason

__all__ = [
    "AuthenticationError",
    "ConfigChangeInProgressError",
    "CorruptStorageError",
    "FrameTooLargeError",
    "IncompatibleStorageError",
    "InvalidConfigChangeError",
    "LeaderNotReadyError",
    "NoLeaderError",
    "NotAStoreError",
    "NotLeaderError",
    "ProtocolError",
    "RaftRefusedError",
    "ReplObjError",
    "StorageError",
    "TransferInProgressError",
    "TransportError",
    "VersionMismatchError",
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


# --- storage ---------------------------------------------------------------------------


class StorageError(ReplObjError, OSError):
    """The durable store failed; the node cannot continue safely on this data directory."""


class CorruptStorageError(StorageError):
    """Stored data failed its checksum or could not be decoded; restore the node from a peer."""


class NotAStoreError(StorageError):
    """The directory holds something that is not a replobj store; nothing was changed."""


class IncompatibleStorageError(StorageError):
    """The store was written by an incompatible format version; nothing was changed."""


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
