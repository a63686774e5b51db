"""The bytes of a state-machine snapshot: writing them, and reading them back.

Layout: one format tag byte, then a pickle (protocol 5) of a dict holding the applied
index and term, the session table (:meth:`~replobj.sessions.SessionTable.export`) and,
by object name, the object's class name and its state pickled on its own (so a state
that cannot be decoded here is reported by name).

- ``0x02`` (:data:`SNAPSHOT_TAG`, written): both pickles come from
  :func:`replobj.pickling.dumps`, so they hold a ``BINPERSID`` opcode every
  :data:`~replobj.pickling.YIELD_EVERY` objects (each loads as the object before it);
  that lets a worker thread read or write a large snapshot while the event loop runs.
- ``0x01`` (:data:`PLAIN_SNAPSHOT_TAG`, still read, no longer written): the same dict in
  plain pickles, as versions before that wrote it.

Nothing here touches live objects: the state machine hands over what to write and gets
back what was read. The cluster configuration travels next to the snapshot, in the
Raft ``SnapshotMeta``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import pickling
from .errors import (
    ClassMismatchError,
    CorruptSnapshotError,
    SnapshotAbandonedError,
    UnknownObjectError,
)
from .pickling import StopFlag
from .raft.types import LogIndex, Term
from .sessions import SessionTable

__all__ = [
    "PLAIN_SNAPSHOT_TAG",
    "SNAPSHOT_TAG",
    "CheckedSnapshot",
    "StoredSnapshot",
    "check_objects",
    "decode_snapshot",
    "decode_state",
    "encode_snapshot",
]

SNAPSHOT_TAG = 0x02
"""First byte of the snapshots written now (pickles with periodic persistent ids)."""

PLAIN_SNAPSHOT_TAG = 0x01
"""First byte of the snapshots written before (plain pickles); still read."""

_READABLE = frozenset({PLAIN_SNAPSHOT_TAG, SNAPSHOT_TAG})


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """What snapshot bytes hold, each object's state still pickled.

    :param index: the applied index the snapshot was taken at.
    :param term: the term of the entry at ``index``.
    :param sessions: the client session table, rebuilt.
    :param objects: by object name, its class name and its pickled state.
    """

    index: LogIndex
    term: Term
    sessions: SessionTable
    objects: dict[str, tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class CheckedSnapshot:
    """A snapshot decoded and checked by :meth:`~replobj.statemachine.StateMachine.check_snapshot`,
    ready for :meth:`~replobj.statemachine.StateMachine.restore_checked` (which then
    decodes nothing).

    :param index: the applied index it restores.
    :param term: the term at ``index``.
    :param sessions: the client session table it restores.
    :param states: by object name, the state to give the live object.
    """

    index: LogIndex
    term: Term
    sessions: SessionTable
    states: dict[str, Any]


def encode_snapshot(
    index: LogIndex,
    term: Term,
    sessions: object,
    objects: Mapping[str, tuple[str, bytes]],
    stop: StopFlag | None = None,
) -> bytes:
    """The snapshot bytes (tag :data:`SNAPSHOT_TAG`).

    :param sessions: :meth:`~replobj.sessions.SessionTable.export` of the session table.
    :param objects: by name, each object's class name and pickled state.
    :param stop: once set, pickling stops.
    :raises ~replobj.errors.SnapshotAbandonedError: if ``stop`` was set.
    """
    doc = {
        "applied_index": index,
        "applied_term": term,
        "sessions": sessions,
        "objects": dict(objects),
    }
    return pickling.dumps(doc, stop, prefix=bytes([SNAPSHOT_TAG]))


def decode_snapshot(
    data: bytes, session_ttl: float, stop: StopFlag | None = None
) -> StoredSnapshot:
    """Read snapshot bytes of either tag, leaving the objects' states pickled.

    :param session_ttl: the ttl of the rebuilt session table.
    :param stop: once set, unpickling stops.
    :raises ~replobj.errors.CorruptSnapshotError: if ``data`` is not such a snapshot.
    :raises ~replobj.errors.SnapshotAbandonedError: if ``stop`` was set.
    """
    if not data or data[0] not in _READABLE:
        raise CorruptSnapshotError(
            f"not a replobj state-machine snapshot (tag {bytes(data[:1])!r}); "
            "it was not written by this version of replobj"
        )
    try:
        doc = pickling.loads(data, stop, offset=1)
        index, term = int(doc["applied_index"]), int(doc["applied_term"])
        sessions = SessionTable.from_export(doc["sessions"], session_ttl)
        objects = {str(n): (str(c), s) for n, (c, s) in doc["objects"].items()}
    except SnapshotAbandonedError:
        raise
    except Exception as exc:
        raise CorruptSnapshotError(
            f"cannot decode a snapshot of {len(data)} bytes ({type(exc).__name__}: {exc})"
        ) from exc
    return StoredSnapshot(index, term, sessions, objects)


def decode_state(name: str, blob: bytes, stop: StopFlag | None = None) -> Any:
    """The state of object ``name`` from its pickle in a :class:`StoredSnapshot`.

    :raises ~replobj.errors.CorruptSnapshotError: if it cannot be decoded here.
    :raises ~replobj.errors.SnapshotAbandonedError: if ``stop`` was set.
    """
    try:
        return pickling.loads(blob, stop)
    except SnapshotAbandonedError:
        raise
    except Exception as exc:
        raise CorruptSnapshotError(
            f"cannot decode the state of {name!r} ({type(exc).__name__}: {exc}); "
            "every node must run the same code"
        ) from exc


def check_objects(stored: StoredSnapshot, class_names: Mapping[str, str]) -> None:
    """Check that ``stored`` holds exactly the objects attached here, of the same classes.

    :param class_names: the class name of each attached object, by name.
    :raises ~replobj.errors.UnknownObjectError: if an object is in one but not the other.
    :raises ~replobj.errors.ClassMismatchError: if an object's class differs.
    """
    objects = stored.objects
    for name in sorted(objects.keys() ^ class_names.keys()):
        where = "only in the snapshot" if name in objects else "not in the snapshot"
        raise UnknownObjectError(
            f"object {name!r} is {where}: attach the same objects under the same names "
            "on every node"
        )
    for name, (class_name, _) in objects.items():
        if class_name != class_names[name]:
            raise ClassMismatchError(
                f"object {name!r} is a {class_names[name]} here but the snapshot holds a "
                f"{class_name}: attach the same class under the same name on every node"
            )
