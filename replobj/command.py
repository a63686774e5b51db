"""The command payload carried by ``COMMAND`` log entries, and its byte format.

Layout of a payload::

    byte 0      format tag (COMMAND_TAG: one command, BATCH_TAG or PACKED_TAG: several)
    bytes 1-8   leader timestamp, IEEE double, big-endian (see :func:`stamp_command`)
    bytes 9-    COMMAND_TAG: pickle (protocol 5) of the command fields as a plain tuple;
                BATCH_TAG: one pickle of a tuple of such tuples; PACKED_TAG (one
                entry for the calls submitted together, :func:`pack_commands`): per
                command, its own COMMAND_TAG pickle's length (u32, big-endian) and bytes

Arguments are pickled with :mod:`pickle`; only when that fails is the payload made with
``cloudpickle`` (lambdas, local classes), which is several times slower. Both decode
with :func:`pickle.loads`. Payloads come from the authenticated log: decoding runs
pickle, so only members holding the cluster secret can write them.
"""

from __future__ import annotations

import math
import pickle
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from .errors import CorruptCommandError, UnpicklableArgumentError

__all__ = [
    "BATCH_TAG",
    "COMMAND_TAG",
    "PACKED_TAG",
    "Command",
    "CommandFields",
    "CommandOutcome",
    "decode_command",
    "decode_commands",
    "decode_packed_command",
    "decode_packed_fields",
    "encode_batch",
    "encode_command",
    "has_immutable_arguments",
    "new_client_id",
    "pack_commands",
    "payload_timestamp",
    "stamp_command",
    "unpack_commands",
]

COMMAND_TAG = 0x01
"""First byte of a payload holding one command."""
BATCH_TAG = 0x02
"""First byte of a payload holding several commands sharing one timestamp."""
PACKED_TAG = 0x03
"""First byte of a payload holding several separately pickled commands (one log entry)."""

_HEADER = struct.Struct(">Bd")
_LENGTH = struct.Struct(">I")
_TAGS = (COMMAND_TAG, BATCH_TAG, PACKED_TAG)
_BYTES_LIKE = (bytes, bytearray, memoryview)
_IMMUTABLE_LEAVES = frozenset({int, float, complex, bool, str, bytes, type(None)})
CommandFields = tuple[bytes, int, int, str, str, str, tuple[Any, ...], dict[str, Any]]
"""A command as pickled in a payload: client id, seq, lowest pending, object name, class
name, method, args, kwargs (the timestamp is in the payload's header)."""


def new_client_id() -> bytes:
    """A fresh random 128-bit client id."""
    return secrets.token_bytes(16)


@dataclass(frozen=True, slots=True)
class Command:
    """One call of a command method, as proposed to the log.

    :param client_id: 16 random bytes identifying the caller (see :func:`new_client_id`).
    :param seq: the caller's sequence number for this call, from 1; a retry reuses it.
    :param object_name: the name the object was attached under.
    :param class_name: the ``ObjectSpec.class_name`` of the caller's class.
    :param method: the command method's name.
    :param args: positional arguments.
    :param kwargs: keyword arguments.
    :param timestamp: seconds since the epoch, assigned by the leader when it proposes.
    :param lowest_pending: the lowest sequence number of this client whose outcome the
        caller has not received yet (Raft thesis §6.3); the state machine forgets kept
        outcomes below it. ``0`` (the default) means ``seq``: no other call in flight.
    :raises ValueError: if a field is out of range.
    :raises TypeError: if a field has the wrong type.
    """

    client_id: bytes
    seq: int
    object_name: str
    class_name: str
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    timestamp: float = 0.0
    lowest_pending: int = 0

    def __post_init__(self) -> None:
        client_id, seq, lowest_pending = self.client_id, self.seq, self.lowest_pending
        if type(client_id) is not bytes or len(client_id) != 16:
            raise ValueError(f"client_id must be 16 bytes, got {client_id!r}")
        if type(seq) is not int or type(lowest_pending) is not int:
            raise TypeError(f"seq and lowest_pending must be ints, got {seq!r}, {lowest_pending!r}")
        if seq < 1:
            raise ValueError(f"seq starts at 1, got {seq}")
        if lowest_pending == 0:
            object.__setattr__(self, "lowest_pending", seq)
        elif not 1 <= lowest_pending <= seq:
            raise ValueError(f"lowest_pending must be in 1..seq, got {lowest_pending}")
        object_name, class_name, method = self.object_name, self.class_name, self.method
        if not (
            type(object_name) is str
            and type(class_name) is str
            and type(method) is str
            and object_name
            and class_name
            and method
        ):
            raise TypeError(
                "object_name, class_name and method must be non-empty str, got "
                f"{self.object_name!r}, {self.class_name!r}, {self.method!r}"
            )
        if method[0] == "_":
            raise ValueError(f"private method {method!r} cannot be a command")
        if type(self.args) is not tuple:
            raise TypeError(f"args must be a tuple, got {type(self.args).__name__}")
        kwargs = self.kwargs
        if type(kwargs) is not dict or (kwargs and not all(type(k) is str for k in kwargs)):
            raise TypeError("kwargs must be a dict with str keys")
        timestamp = self.timestamp
        if (type(timestamp) is not float and type(timestamp) is not int) or (
            timestamp - timestamp != 0
        ):
            raise ValueError(f"timestamp must be a finite number, got {timestamp!r}")

    @classmethod
    def trusted(
        cls,
        client_id: bytes,
        seq: int,
        names: tuple[str, str, str],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        lowest_pending: int,
    ) -> Command:
        """A command whose fields the caller guarantees, without the checks of
        :meth:`__post_init__` (the call hot path: a proxy's names were checked when the
        object was attached, ``args`` and ``kwargs`` come from ``*args`` and ``**kwargs``,
        ``client_id`` from :func:`new_client_id`, ``1 <= lowest_pending <= seq``).

        :param names: the object name, its class name and the method.
        """
        cmd = object.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(cmd, "client_id", client_id)
        setattr_(cmd, "seq", seq)
        setattr_(cmd, "object_name", names[0])
        setattr_(cmd, "class_name", names[1])
        setattr_(cmd, "method", names[2])
        setattr_(cmd, "args", args)
        setattr_(cmd, "kwargs", kwargs)
        setattr_(cmd, "timestamp", 0.0)
        setattr_(cmd, "lowest_pending", lowest_pending)
        return cmd

    @property
    def call(self) -> str:
        """``object.method`` for messages."""
        return f"{self.object_name}.{self.method}"

    def with_timestamp(self, timestamp: float) -> Command:
        """A copy carrying the leader-assigned ``timestamp``."""
        return replace(self, timestamp=timestamp)

    def fields(self) -> CommandFields:
        """The fields as pickled in a payload (and as the state machine applies them)."""
        return (
            self.client_id,
            self.seq,
            self.lowest_pending,
            self.object_name,
            self.class_name,
            self.method,
            self.args,
            self.kwargs,
        )


class CommandOutcome:
    """What applying one command produced: a return value or the exception it raised.

    A plain slotted class rather than a frozen dataclass: the state machine builds one
    per applied command on every replica, and a frozen dataclass costs about four times
    as much to build. Treat it as read-only (the session table keeps it for retries).

    :param client_id: the caller's client id.
    :param seq: the caller's sequence number.
    :param value: the method's return value (``None`` when ``error`` is set).
    :param error: the exception the method (or the state machine) raised, if any.
    :param duplicate: ``True`` when the command had been applied before and this is
        the outcome kept from that time (the method did not run again).
    """

    __slots__ = ("client_id", "duplicate", "error", "seq", "value")

    def __init__(
        self,
        client_id: bytes,
        seq: int,
        value: Any = None,
        error: Exception | None = None,
        duplicate: bool = False,
    ) -> None:
        self.client_id = client_id
        self.seq = seq
        self.value = value
        self.error = error
        self.duplicate = duplicate

    def _key(self) -> tuple[bytes, int, Any, Exception | None, bool]:
        return (self.client_id, self.seq, self.value, self.error, self.duplicate)

    def __eq__(self, other: object) -> bool:
        if type(other) is not CommandOutcome:
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"CommandOutcome(client_id={self.client_id!r}, seq={self.seq!r}, "
            f"value={self.value!r}, error={self.error!r}, duplicate={self.duplicate!r})"
        )

    def as_duplicate(self) -> CommandOutcome:
        """A copy marked ``duplicate`` (the kept outcome reported to a retry)."""
        return CommandOutcome(self.client_id, self.seq, self.value, self.error, True)

    def result(self) -> Any:
        """The return value, or raise the exception, as a local call would.

        :raises Exception: the exception the command raised.
        """
        if self.error is not None:
            raise self.error
        return self.value


def encode_command(cmd: Command) -> bytes:
    """The payload for ``cmd`` (timestamp included).

    :raises ~replobj.errors.UnpicklableArgumentError: if an argument can be pickled
        neither by pickle nor by cloudpickle; the message names the method and argument.
    """
    return _HEADER.pack(COMMAND_TAG, cmd.timestamp) + _dumps(cmd.fields(), (cmd,))


def encode_batch(commands: Sequence[Command]) -> bytes:
    """One payload for several commands; they share the first command's timestamp.

    :raises ValueError: if ``commands`` is empty or their timestamps differ.
    :raises ~replobj.errors.UnpicklableArgumentError: as for :func:`encode_command`.
    """
    if not commands:
        raise ValueError("a batch holds at least one command")
    timestamp = commands[0].timestamp
    if any(c.timestamp != timestamp for c in commands):
        raise ValueError("the commands of a batch must share one timestamp")
    return _HEADER.pack(BATCH_TAG, timestamp) + _dumps(
        tuple(c.fields() for c in commands), commands
    )


def stamp_command(payload: bytes, timestamp: float) -> bytes:
    """``payload`` with its timestamp replaced, without decoding the commands.

    The leader calls this when it proposes a payload encoded by a caller.

    :raises ~replobj.errors.CorruptCommandError: if ``payload`` has no valid header.
    :raises ValueError: if ``timestamp`` is not finite.
    """
    if not math.isfinite(timestamp):
        raise ValueError(f"timestamp must be finite, got {timestamp!r}")
    return _HEADER.pack(_tag(payload), timestamp) + payload[_HEADER.size :]


def payload_timestamp(payload: bytes) -> float:
    """The leader timestamp in ``payload``'s header, without decoding the commands.

    :raises ~replobj.errors.CorruptCommandError: if ``payload`` has no valid header.
    """
    _tag(payload)
    return float(_HEADER.unpack_from(payload)[1])


def has_immutable_arguments(cmd: Command) -> bool:
    """Whether nothing reachable from ``cmd``'s arguments can change after the call.

    True when every argument is a plain ``int``, ``float``, ``complex``, ``bool``,
    ``str``, ``bytes`` or ``None`` (exact types, no subclasses), or a ``tuple`` or
    ``frozenset`` of those. The ``kwargs`` dict itself must be owned by ``cmd``. Such a
    command applies the same from the object itself as from its decoded payload.
    """
    return all(map(_is_immutable, cmd.args)) and all(map(_is_immutable, cmd.kwargs.values()))


def decode_command(payload: bytes) -> Command:
    """The single command in ``payload``.

    :raises ~replobj.errors.CorruptCommandError: if ``payload`` is not one valid command.
    """
    commands = decode_commands(payload)
    if payload[0] != COMMAND_TAG:
        count = len(commands)
        raise CorruptCommandError(f"expected one command, not a batch of {count}")
    return commands[0]


def decode_commands(payload: bytes) -> tuple[Command, ...]:
    """The commands in a single-command or batch payload, in order.

    :raises ~replobj.errors.CorruptCommandError: on garbage, or when the payload refers
        to code this node does not have (run the same code on every node).
    """
    tag = _tag(payload)
    if tag == PACKED_TAG:
        stamp, pickles = unpack_commands(payload)
        return tuple([decode_packed_command(item, stamp) for item in pickles])
    _, timestamp = _HEADER.unpack_from(payload)
    try:
        body = pickle.loads(payload[_HEADER.size :])
        if tag == COMMAND_TAG:
            return (_from_fields(body, timestamp),)
        commands = tuple([_from_fields(item, timestamp) for item in body])
        if not commands:
            raise ValueError("empty batch")
        return commands
    except Exception as exc:
        raise _undecodable(payload, exc) from exc


def pack_commands(payloads: Sequence[bytes]) -> bytes:
    """One payload holding the commands of several single-command payloads, in order.

    Each payload's pickle is copied, not decoded. The result is never longer than the
    payloads together, and carries no timestamp yet (the leader stamps it).

    :raises ValueError: if ``payloads`` is empty or one is not a single-command payload.
    """
    if not payloads:
        raise ValueError("a packed payload holds at least one command")
    skip, length = _HEADER.size, _LENGTH.pack
    parts = [_HEADER.pack(PACKED_TAG, 0.0)]
    add = parts.append
    for payload in payloads:
        if len(payload) <= skip or payload[0] != COMMAND_TAG:
            raise ValueError("only single-command payloads can be packed")
        add(length(len(payload) - skip))
        add(payload[skip:])
    return b"".join(parts)


def unpack_commands(payload: bytes) -> tuple[float, list[bytes]]:
    """The timestamp and the commands' pickles of a :func:`pack_commands` payload.

    :raises ~replobj.errors.CorruptCommandError: if ``payload`` is not a well-formed
        packed payload (the pickles themselves are not decoded here).
    """
    if _tag(payload) != PACKED_TAG:
        raise CorruptCommandError("not a packed command payload")
    end, offset, pickles = len(payload), _HEADER.size, []
    while offset < end:
        start = offset + _LENGTH.size
        size = _LENGTH.unpack_from(payload, offset)[0] if start <= end else 0
        offset = start + size
        if size == 0 or offset > end:
            raise CorruptCommandError(
                f"a packed command payload of {end} bytes is truncated or malformed; "
                "payloads must come from the log"
            )
        pickles.append(payload[start:offset])
    return float(_HEADER.unpack_from(payload)[1]), pickles


def decode_packed_command(data: bytes, timestamp: float) -> Command:
    """One command of a packed payload (a pickle from :func:`unpack_commands`).

    :raises ~replobj.errors.CorruptCommandError: on garbage, or when it refers to code
        this node does not have.
    """
    try:
        return _from_fields(pickle.loads(data), timestamp)
    except Exception as exc:
        raise _undecodable(data, exc) from exc


def decode_packed_fields(data: bytes) -> CommandFields:
    """The fields of one command of a packed payload, without building a :class:`Command`.

    The apply hot path of a packed entry: the node that encoded the command validated
    it (:class:`Command` checks its fields), so only what the session table relies on
    is checked again here (the shape, the client id and the sequence numbers); a bad
    object name, method or arguments make that command's outcome an error when it
    applies, as for any command.

    :raises ~replobj.errors.CorruptCommandError: on garbage, or when it refers to code
        this node does not have.
    """
    try:
        fields = pickle.loads(data)
        client_id, seq, lowest_pending = fields[0], fields[1], fields[2]
        if (
            type(fields) is not tuple
            or len(fields) != 8
            or type(client_id) is not bytes
            or type(seq) is not int
            or type(lowest_pending) is not int
            or not 0 < lowest_pending <= seq
            or len(client_id) != 16
        ):
            raise ValueError("not the fields of a command")
    except Exception as exc:
        raise _undecodable(data, exc) from exc
    return fields


def _undecodable(data: bytes, exc: Exception) -> CorruptCommandError:
    return CorruptCommandError(
        f"cannot decode a command payload of {len(data)} bytes ({type(exc).__name__}: {exc}); "
        "every node must run the same code, and payloads must come from the log"
    )


def _is_immutable(value: object) -> bool:
    kind = type(value)
    if kind in _IMMUTABLE_LEAVES:
        return True
    if kind is tuple or kind is frozenset:
        return all(map(_is_immutable, value))  # type: ignore[call-overload]
    return False


def _tag(payload: bytes) -> int:
    if not isinstance(payload, _BYTES_LIKE):
        raise CorruptCommandError(f"a command payload is bytes, got {type(payload).__name__}")
    if len(payload) <= _HEADER.size or payload[0] not in _TAGS:
        raise CorruptCommandError(
            f"not a command payload (format tag or header missing: {bytes(payload[:12])!r}); "
            "it was not written by this version of replobj"
        )
    return payload[0]


def _from_fields(item: Any, timestamp: float) -> Command:
    client_id, seq, lowest_pending, object_name, class_name, method, args, kwargs = item
    return Command(
        client_id, seq, object_name, class_name, method, args, kwargs, timestamp, lowest_pending
    )


def _dumps(body: object, commands: Sequence[Command]) -> bytes:
    try:
        return pickle.dumps(body, protocol=5)
    except Exception:
        pass
    try:
        data: bytes = cloudpickle.dumps(body, protocol=5)
        return data
    except Exception as exc:
        raise _unpicklable(commands, exc) from exc


def _unpicklable(commands: Sequence[Command], error: Exception) -> UnpicklableArgumentError:
    for cmd in commands:
        named = [*enumerate(cmd.args), *((repr(k), v) for k, v in cmd.kwargs.items())]
        for label, value in named:
            try:
                cloudpickle.dumps(value, protocol=5)
            except Exception as exc:
                kind = type(value).__name__
                return UnpicklableArgumentError(
                    f"cannot send {cmd.call}(): argument {label} ({kind}) cannot be pickled "
                    f"({exc}); pass plain data (numbers, str, bytes, containers, dataclasses) "
                    "instead"
                )
    calls = ", ".join(sorted({c.call for c in commands}))
    return UnpicklableArgumentError(
        f"cannot send {calls}(): the arguments cannot be pickled ({error}); "
        "pass plain data (numbers, str, bytes, containers, dataclasses) instead"
    )
