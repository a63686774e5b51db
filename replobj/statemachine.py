"""Applies committed log entries to the attached objects, identically on every replica.

No I/O, no tasks, no clocks: the runtime feeds committed entries in log order to
:meth:`StateMachine.apply` and routes the returned outcomes to waiting callers. Anything
a command raises is captured in its outcome (the caller sees it raised) and the machine
keeps going, so a failing command leaves every replica in the same state.

Decisions:

- a command that raises still counts as applied: its exception is the outcome, kept
  for retries like a return value; a method that half-mutated state before raising has
  done so identically everywhere;
- unknown objects, unknown methods and class mismatches are outcomes too (the node
  keeps serving); a mismatch means the nodes are misconfigured and may diverge, so the
  runtime should log it loudly;
- commands never run as local queries (:meth:`StateMachine.run_query` refuses them);
- command payloads are decoded, except when the node that encoded one passes the
  command object it encoded (``local``): the node does so only for commands whose
  arguments are immutable (:func:`~replobj.command.has_immutable_arguments`), so a
  caller who mutates an argument after the call cannot change one replica only; any
  other argument goes through the pickle round trip, as on every other replica.
- the calls a node submits together arrive as one entry with a packed payload
  (:func:`~replobj.command.pack_commands`); its commands apply in order, each with its
  own session check, outcome and ``current_entry().position``, and one that cannot be
  decoded on this replica fails alone.

Snapshots: the layout is :mod:`replobj.snapshot_format`'s (each object's state is its
``__getstate__``, pickled separately, cloudpickle as fallback). :meth:`StateMachine.snapshot`
and :meth:`StateMachine.check_snapshot` may run in a worker thread while the event loop
runs, as long as nothing is applied or restored meanwhile (queries only read); they let
the loop run while they pickle. Restoring is in place: a class's own ``__setstate__`` is
called on the live instance (attributes it does not set keep their values); otherwise
the instance ``__dict__`` and slots are replaced as pickle would fill a fresh instance
(:meth:`StateMachine.check_snapshot` does it into fresh instances).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from .command import (
    PACKED_TAG,
    Command,
    CommandFields,
    CommandOutcome,
    decode_commands,
    decode_packed_fields,
    payload_timestamp,
    unpack_commands,
)
from .entry_context import enter_entry, leave_entry, run_in_entry
from .errors import (
    ApplyOrderError,
    AttachAfterStartError,
    AttachError,
    ClassMismatchError,
    CorruptCommandError,
    CorruptSnapshotError,
    NotAQueryError,
    UnknownMethodError,
    UnknownObjectError,
)
from .object_state import check_state, dump_state, restores_itself, set_state
from .pickling import StopFlag
from .raft.types import Entry, EntryKind, LogIndex, Term
from .replicated import ObjectSpec, spec_of
from .sessions import DEFAULT_SESSION_TTL, SessionTable
from .snapshot_format import (
    SNAPSHOT_TAG,
    CheckedSnapshot,
    check_objects,
    decode_snapshot,
    decode_state,
    encode_snapshot,
)

__all__ = ["SNAPSHOT_TAG", "ApplyOutcome", "CheckedSnapshot", "LocalCommands", "StateMachine"]

_T = TypeVar("_T")
_PACKED = bytes([PACKED_TAG])

LocalCommands = tuple[Command | None, ...]
"""The commands a node encoded, by position in a packed payload (``None``: decode that one)."""


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """What applying one entry produced.

    :param index: the entry's index.
    :param term: the entry's term.
    :param kind: the entry's kind; ``NOOP``/``CONFIG`` entries have no commands.
    :param commands: one outcome per command in the entry, in order (a command of a
        packed payload that could not be decoded has an outcome whose ``error`` is the
        :class:`~replobj.errors.CorruptCommandError`, with an empty client id and seq 0).
    :param error: set when a ``COMMAND`` payload could not be decoded as a whole (then
        ``commands`` is empty); the callers that proposed that index should see it.
    """

    index: LogIndex
    term: Term
    kind: EntryKind
    commands: tuple[CommandOutcome, ...] = ()
    error: CorruptCommandError | None = None


class StateMachine:
    """The attached objects, the client sessions and the applied position.

    :param session_ttl: seconds of leader time an idle client session survives (see
        :mod:`replobj.sessions`); must be equal on every node.
    """

    __slots__ = (
        "_applied_index",
        "_applied_term",
        "_frozen",
        "_objects",
        "_sessions",
        "_specs",
        "_targets",
    )

    def __init__(self, *, session_ttl: float = DEFAULT_SESSION_TTL) -> None:
        self._objects: dict[str, Any] = {}
        self._specs: dict[str, ObjectSpec] = {}
        self._targets: dict[tuple[str, str, str], Any] = {}
        """The object of each (object name, class name, command) checked so far."""
        self._sessions = SessionTable(session_ttl)
        self._applied_index: LogIndex = 0
        self._applied_term: Term = 0
        self._frozen = False

    @property
    def applied_index(self) -> LogIndex:
        """Index of the last entry applied (or restored from a snapshot); 0 at first."""
        return self._applied_index

    @property
    def applied_term(self) -> Term:
        """Term of the entry at :attr:`applied_index`."""
        return self._applied_term

    @property
    def objects(self) -> Mapping[str, Any]:
        """The attached objects by name (read-only view)."""
        return MappingProxyType(self._objects)

    @property
    def sessions(self) -> SessionTable:
        """The client session table (for inspection; the machine updates it)."""
        return self._sessions

    @property
    def frozen(self) -> bool:
        """Whether attaching is closed (after :meth:`freeze` or the first apply/restore)."""
        return self._frozen

    def attach(self, name: str, obj: _T) -> _T:
        """Attach ``obj`` under ``name``; every node must attach the same class there.

        :returns: ``obj`` itself (it keeps working as a plain object).
        :raises ~replobj.errors.NotReplicatedError: if ``obj``'s class is not decorated.
        :raises ~replobj.errors.AttachError: if ``name`` is empty or already used.
        :raises ~replobj.errors.AttachAfterStartError: after :meth:`freeze`.
        """
        if self._frozen:
            raise AttachAfterStartError(
                f"cannot attach {name!r}: the node has started; attach every object before "
                "starting it (and the same objects on every node)"
            )
        spec = spec_of(obj)
        if not isinstance(name, str) or not name:
            raise AttachError(f"an object name is a non-empty str, got {name!r}")
        if name in self._objects:
            raise AttachError(
                f"an object is already attached as {name!r} "
                f"({self._specs[name].class_name}); choose another name"
            )
        self._objects[name] = obj
        self._specs[name] = spec
        return obj

    def freeze(self) -> None:
        """Close attaching; called when the node starts."""
        self._frozen = True

    def apply(self, entry: Entry, local: Command | LocalCommands | None = None) -> ApplyOutcome:
        """Apply the next committed entry.

        :param entry: the entry.
        :param local: what this node knows of ``entry.payload`` when it encoded it and
            knows the entry is that payload (same index and term as its proposal): the
            command itself for a single-command payload, or for a packed payload one
            command (or ``None``) per position. Those commands are applied without
            decoding, with the entry's timestamp. Pass a command only if its arguments
            cannot have changed since it was encoded (see
            :func:`~replobj.command.has_immutable_arguments`).
        :raises ~replobj.errors.ApplyOrderError: if ``entry`` does not directly follow
            :attr:`applied_index` (nothing is applied then).
        """
        if entry.index != self._applied_index + 1:
            raise ApplyOrderError(
                f"entry {entry.index} cannot follow applied index {self._applied_index}: "
                "entries must be applied once each, in log order"
            )
        self._frozen = True
        outcome: ApplyOutcome
        if entry.kind is EntryKind.COMMAND:
            where, token = enter_entry(entry.index, entry.term)
            try:
                results = self._apply_payload(entry, local, where)
            except CorruptCommandError as exc:
                outcome = ApplyOutcome(entry.index, entry.term, entry.kind, error=exc)
            else:
                outcome = ApplyOutcome(entry.index, entry.term, entry.kind, results)
            finally:
                leave_entry(where, token)
        else:
            outcome = ApplyOutcome(entry.index, entry.term, entry.kind)
        self._applied_index = entry.index
        self._applied_term = entry.term
        return outcome

    def _apply_payload(
        self, entry: Entry, local: Command | LocalCommands | None, where: list[Any]
    ) -> tuple[CommandOutcome, ...]:
        payload = entry.payload
        if payload[:1] == _PACKED:
            return self._apply_packed(entry, local, where)
        if isinstance(local, Command):
            timestamp = payload_timestamp(payload)
            return (self._apply_command(local.fields(), timestamp, 0, where),)
        commands = decode_commands(payload)
        return tuple(
            [self._apply_command(c.fields(), c.timestamp, i, where) for i, c in enumerate(commands)]
        )

    def _apply_packed(
        self, entry: Entry, local: Command | LocalCommands | None, where: list[Any]
    ) -> tuple[CommandOutcome, ...]:
        """Apply each command of a packed entry from its pickled fields (no
        :class:`Command` is built), or from the command this node encoded."""
        timestamp, pickles = unpack_commands(entry.payload)
        if not isinstance(local, tuple) or len(local) != len(pickles):
            local = (None,) * len(pickles)
        results: list[CommandOutcome] = []
        add = results.append
        apply = self._apply_command
        for position, (data, cmd) in enumerate(zip(pickles, local, strict=True)):
            if cmd is None:
                try:
                    fields = decode_packed_fields(data)
                except CorruptCommandError as exc:
                    add(CommandOutcome(b"", 0, error=exc))
                    continue
            else:
                fields = cmd.fields()
            add(apply(fields, timestamp, position, where))
        return tuple(results)

    def _apply_command(
        self, fields: CommandFields, timestamp: float, position: int, where: list[Any]
    ) -> CommandOutcome:
        """Apply one command; ``where`` is the current entry (see
        :func:`~replobj.entry_context.enter_entry`)."""
        sessions = self._sessions
        kept = sessions.begin(fields, timestamp)
        if kept is not None:
            return kept
        client_id, seq, _, object_name, class_name, method, args, kwargs = fields
        try:
            target = self._targets.get((object_name, class_name, method))
            if target is None:
                target = self._command_target(object_name, class_name, method)
                self._targets[object_name, class_name, method] = target
            where[2] = sessions.now
            where[3] = position
            value = getattr(target, method)(*args, **kwargs)
            outcome = CommandOutcome(client_id, seq, value)
        except Exception as exc:
            outcome = CommandOutcome(client_id, seq, error=exc)
        sessions.record(fields, outcome)
        return outcome

    def _command_target(self, object_name: str, class_name: str, method: str) -> Any:
        obj, spec = self._lookup(object_name)
        if spec.class_name != class_name:
            raise ClassMismatchError(
                f"object {object_name!r} is a {spec.class_name} here but the command came "
                f"from {class_name}: attach the same class under the same name on every node"
            )
        if not spec.is_command(method):
            what = "a query, not a command" if spec.is_query(method) else "not a command"
            raise UnknownMethodError(
                f"{method!r} is {what} of {spec.class_name} (object {object_name!r}); "
                "run the same code on every node"
            )
        return obj

    def _lookup(self, name: str) -> tuple[Any, ObjectSpec]:
        try:
            return self._objects[name], self._specs[name]
        except KeyError:
            attached = ", ".join(map(repr, sorted(self._objects))) or "none"
            raise UnknownObjectError(
                f"no object is attached as {name!r} on this node (attached: {attached}); "
                "attach the same objects under the same names on every node"
            ) from None

    def run_query(
        self,
        name: str,
        method: str,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        """Run a ``@query`` on this replica's state (a local read; no log, no entry).

        Commands cannot run as queries: their changes would exist on one replica only.

        :raises ~replobj.errors.UnknownObjectError: if nothing is attached as ``name``.
        :raises ~replobj.errors.NotAQueryError: if ``method`` is a command.
        :raises ~replobj.errors.UnknownMethodError: if ``method`` is neither.
        :raises Exception: whatever the query raises.
        """
        obj, spec = self._lookup(name)
        if not spec.is_query(method):
            if spec.is_command(method):
                raise NotAQueryError(
                    f"{name}.{method} is a command: call it through the node so it goes "
                    "through the log (mark the method @replobj.query if it only reads)"
                )
            raise UnknownMethodError(f"{method!r} is not a query of {spec.class_name}")
        return run_in_entry(None, getattr(obj, method), args, dict(kwargs or {}))

    def snapshot(self, stop: StopFlag | None = None) -> bytes:
        """The state of every object, the sessions and the applied position, as bytes.

        :param stop: once set (by another thread), pickling stops.
        :raises ~replobj.errors.UnpicklableStateError: if an object's state cannot be
            pickled; the message names the object.
        :raises ~replobj.errors.SnapshotAbandonedError: if ``stop`` was set.
        """
        objects = {
            name: (self._specs[name].class_name, dump_state(name, obj, stop))
            for name, obj in self._objects.items()
        }
        return encode_snapshot(
            self._applied_index, self._applied_term, self._sessions.export(), objects, stop
        )

    def check_snapshot(self, data: bytes, stop: StopFlag | None = None) -> CheckedSnapshot:
        """Decode ``data`` into fresh objects, as :meth:`restore` would, changing nothing
        (a received snapshot is checked so before it replaces the stored one).

        :param stop: once set (by another thread), decoding stops.
        :returns: what :meth:`restore_checked` restores without decoding again (the state
            of an object whose class has its own ``__setstate__`` is decoded twice: that
            method may change the state the fresh instance was given).
        :raises ~replobj.errors.ReplicatedObjectError: as :meth:`restore` does.
        :raises ~replobj.errors.SnapshotAbandonedError: if ``stop`` was set.
        """
        checked, blobs = self._decode_snapshot(data, stop)
        states = checked.states
        self._set_states(states, check_state)
        for name, obj in self._objects.items():
            if restores_itself(obj):
                states[name] = decode_state(name, blobs[name], stop)
        return checked

    def restore(self, data: bytes) -> None:
        """Replace the state with a :meth:`snapshot`; the attached instances stay the same.

        Everything is decoded and checked before any object changes.

        :raises ~replobj.errors.CorruptSnapshotError: if ``data`` cannot be decoded or an
            object's ``__setstate__`` fails.
        :raises ~replobj.errors.UnknownObjectError: if the snapshot's objects differ from
            the attached ones.
        :raises ~replobj.errors.ClassMismatchError: if an object's class differs.
        """
        self.restore_checked(self._decode_snapshot(data)[0])

    def restore_checked(self, checked: object) -> None:
        """Replace the state with one :meth:`check_snapshot` returned (see :meth:`restore`).

        :raises TypeError: if ``checked`` did not come from :meth:`check_snapshot`.
        :raises ~replobj.errors.CorruptSnapshotError: if an object's ``__setstate__`` fails.
        """
        if not isinstance(checked, CheckedSnapshot):
            raise TypeError(f"expected a CheckedSnapshot, got {type(checked).__name__}")
        self._set_states(checked.states, set_state)
        self._sessions = checked.sessions
        self._applied_index, self._applied_term = checked.index, checked.term
        self._frozen = True

    def _set_states(self, states: dict[str, Any], setter: Callable[[Any, Any], None]) -> None:
        for name, state in states.items():
            try:
                setter(self._objects[name], state)
            except Exception as exc:
                raise CorruptSnapshotError(
                    f"object {name!r} rejected its snapshot state ({type(exc).__name__}: {exc})"
                ) from exc

    def _decode_snapshot(
        self, data: bytes, stop: StopFlag | None = None
    ) -> tuple[CheckedSnapshot, dict[str, bytes]]:
        """The decoded snapshot, and each object's pickled state."""
        stored = decode_snapshot(data, self._sessions.ttl, stop)
        check_objects(stored, {name: spec.class_name for name, spec in self._specs.items()})
        blobs = {name: blob for name, (_, blob) in stored.objects.items()}
        states = {name: decode_state(name, blob, stop) for name, blob in blobs.items()}
        return CheckedSnapshot(stored.index, stored.term, stored.sessions, states), blobs
