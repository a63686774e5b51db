"""The wire codec: every Raft message as one compact, length-prefixed binary frame.

A frame is ``length (u32, big-endian) | version (u8) | kind (u8) | body``, where
``length`` counts the bytes after the prefix. The body is a MessagePack array of the
message's fields in declaration order, encoded and decoded by msgspec with typed
validation (chosen over a hand-written ``struct`` codec by measurement, see
``docs/wire.md``). Nothing is ever unpickled. Decoding untrusted bytes raises only
:class:`~replobj.errors.ProtocolError` (or its subclass
:class:`~replobj.errors.FrameTooLargeError`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Final, TypeAlias

import msgspec
from msgspec import Meta

from replobj.errors import FrameTooLargeError, ProtocolError
from replobj.raft.messages import (
    AppendEntries,
    AppendEntriesReply,
    InstallSnapshot,
    InstallSnapshotReply,
    Message,
    ProposeReply,
    ProposeRequest,
    ReadIndexReply,
    ReadIndexRequest,
    RequestVote,
    RequestVoteReply,
    TimeoutNow,
)
from replobj.raft.types import (
    MAX_INDEX,
    MAX_NODE_ID_BYTES,
    MAX_TERM,
    ClusterConfig,
    Entry,
    EntryKind,
    SnapshotMeta,
)

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "FRAME_HEADER_BYTES",
    "KIND_OF",
    "PREFIX_BYTES",
    "WIRE_VERSION",
    "decode_each",
    "decode_frame",
    "decode_frames",
    "encode_frame",
    "frame_length",
    "iter_frames",
]

WIRE_VERSION: Final = 2
"""Bumped whenever the frame layout or any message body changes incompatibly."""

PREFIX_BYTES: Final = 4
"""Size of the big-endian length prefix."""

FRAME_HEADER_BYTES: Final = PREFIX_BYTES + 2
"""Length prefix plus version and kind bytes."""

DEFAULT_MAX_FRAME_BYTES: Final = 16 << 20
"""Largest frame accepted unless configured otherwise (length prefix excluded)."""

_PREFIX = struct.Struct(">I")
_HEADER = struct.Struct(">IBB")

_T = Annotated[int, Meta(ge=0, le=MAX_TERM)]
"""A term: 0 ≤ term ≤ MAX_TERM."""
_I = Annotated[int, Meta(ge=0, le=MAX_INDEX)]
"""A log index or a byte offset: 0 ≤ value ≤ MAX_INDEX."""
_S = Annotated[int, Meta(ge=-(1 << 63), le=(1 << 63) - 1)]
"""Any other integer (sequence numbers, request ids, counts): a signed 64-bit value."""
_Name = Annotated[str, Meta(min_length=1, max_length=MAX_NODE_ID_BYTES)]
"""A node id; its UTF-8 length is checked after decoding (msgspec counts characters)."""
_Names = list[_Name]

_ConfigBody: TypeAlias = tuple[_Names, _Names, _Names | None, _Names]
_MetaBody: TypeAlias = tuple[_I, _T, _ConfigBody]
_EntryBody: TypeAlias = tuple[_T, _I, EntryKind, bytes]

_RequestVoteBody = tuple[_T, _Name, _I, _T, bool, bool]
_RequestVoteReplyBody = tuple[_T, _Name, bool, bool, bool, _I]
_AppendEntriesBody = tuple[_T, _Name, _I, _T, list[_EntryBody], _I, _S]
_AppendEntriesReplyBody = tuple[_T, _Name, bool, _I, _I, _I, _T, _S]
_InstallSnapshotBody = tuple[_T, _Name, _MetaBody, _I, bytes, bool, _S]
_InstallSnapshotReplyBody = tuple[_T, _Name, _I, _I, bool, _S]
_TimeoutNowBody = tuple[_T, _Name]
_ReadIndexRequestBody = tuple[_T, _Name, _S]
_ReadIndexReplyBody = tuple[_T, _Name, _S, _I, bool]

_ProposeRequestBody = tuple[_T, _Name, _S, list[bytes]]
_ProposeReplyBody = tuple[_T, _Name, _S, _T, _I, _S, Annotated[str, Meta(max_length=64)]]

KIND_OF: Final[dict[type[Message], int]] = {
    RequestVote: 1,
    RequestVoteReply: 2,
    AppendEntries: 3,
    AppendEntriesReply: 4,
    InstallSnapshot: 5,
    InstallSnapshotReply: 6,
    TimeoutNow: 7,
    ReadIndexRequest: 8,
    ReadIndexReply: 9,
    ProposeRequest: 10,
    ProposeReply: 11,
}
"""The kind byte of each message class; fixed forever for a given :data:`WIRE_VERSION`."""


def _config_body(config: ClusterConfig) -> tuple[Any, ...]:
    old = None if config.old_voters is None else sorted(config.old_voters)
    return (sorted(config.voters), sorted(config.learners), old, sorted(config.auto_promote))


def _check_name(name: str) -> str:
    if len(name.encode()) > MAX_NODE_ID_BYTES:
        raise ValueError(f"node id {name[:40]!r}... is over {MAX_NODE_ID_BYTES} UTF-8 bytes")
    return name


def _config_from(body: _ConfigBody) -> ClusterConfig:
    voters, learners, old, promote = body
    for names in (voters, learners, old or [], promote):
        for name in names:
            _check_name(name)
    return ClusterConfig(
        voters=frozenset(voters),
        learners=frozenset(learners),
        old_voters=None if old is None else frozenset(old),
        auto_promote=frozenset(promote),
    )


def _body_of(msg: Message) -> tuple[Any, ...]:
    if isinstance(msg, AppendEntries):
        entries = [(e.term, e.index, e.kind, e.payload) for e in msg.entries]
        return (msg.term, msg.sender, msg.prev_index, msg.prev_term, entries,
                msg.leader_commit, msg.seq)  # fmt: skip
    if isinstance(msg, AppendEntriesReply):
        return (msg.term, msg.sender, msg.success, msg.match_index, msg.reject_index,
                msg.hint_index, msg.hint_term, msg.seq)  # fmt: skip
    if isinstance(msg, RequestVote):
        return (msg.term, msg.sender, msg.last_log_index, msg.last_log_term, msg.pre_vote,
                msg.transfer)  # fmt: skip
    if isinstance(msg, RequestVoteReply):
        return (msg.term, msg.sender, msg.granted, msg.pre_vote, msg.withheld, msg.last_index)
    if isinstance(msg, InstallSnapshot):
        meta = (msg.meta.last_index, msg.meta.last_term, _config_body(msg.meta.config))
        return (msg.term, msg.sender, meta, msg.offset, msg.data, msg.done, msg.seq)
    if isinstance(msg, InstallSnapshotReply):
        return (msg.term, msg.sender, msg.last_index, msg.next_offset, msg.done, msg.seq)
    if isinstance(msg, TimeoutNow):
        return (msg.term, msg.sender)
    if isinstance(msg, ReadIndexRequest):
        return (msg.term, msg.sender, msg.request_id)
    if isinstance(msg, ReadIndexReply):
        return (msg.term, msg.sender, msg.request_id, msg.read_index, msg.ok)
    if isinstance(msg, ProposeRequest):
        return (msg.term, msg.sender, msg.request_id, list(msg.payloads))
    if isinstance(msg, ProposeReply):
        return (msg.term, msg.sender, msg.request_id, msg.proposal_term, msg.first_index,
                msg.count, msg.refusal)  # fmt: skip
    raise TypeError(f"not a Raft message: {type(msg).__name__}")


def _append_entries(body: _AppendEntriesBody) -> AppendEntries:
    term, sender, prev_index, prev_term, entries, commit, seq = body
    return AppendEntries(
        term, sender, prev_index, prev_term, tuple(Entry(*e) for e in entries), commit, seq
    )


def _install_snapshot(body: _InstallSnapshotBody) -> InstallSnapshot:
    term, sender, (last_index, last_term, config), offset, data, done, seq = body
    meta = SnapshotMeta(last_index, last_term, _config_from(config))
    return InstallSnapshot(term, sender, meta, offset, data, done, seq)


def _propose_request(body: _ProposeRequestBody) -> ProposeRequest:
    term, sender, request_id, payloads = body
    return ProposeRequest(term, sender, request_id, tuple(payloads))


_Builder: TypeAlias = Callable[[Any], Message]
_DECODERS: Final[dict[int, tuple[msgspec.msgpack.Decoder[Any], _Builder]]] = {
    KIND_OF[RequestVote]: (msgspec.msgpack.Decoder(_RequestVoteBody), lambda b: RequestVote(*b)),
    KIND_OF[RequestVoteReply]: (
        msgspec.msgpack.Decoder(_RequestVoteReplyBody),
        lambda b: RequestVoteReply(*b),
    ),
    KIND_OF[AppendEntries]: (msgspec.msgpack.Decoder(_AppendEntriesBody), _append_entries),
    KIND_OF[AppendEntriesReply]: (
        msgspec.msgpack.Decoder(_AppendEntriesReplyBody),
        lambda b: AppendEntriesReply(*b),
    ),
    KIND_OF[InstallSnapshot]: (msgspec.msgpack.Decoder(_InstallSnapshotBody), _install_snapshot),
    KIND_OF[InstallSnapshotReply]: (
        msgspec.msgpack.Decoder(_InstallSnapshotReplyBody),
        lambda b: InstallSnapshotReply(*b),
    ),
    KIND_OF[TimeoutNow]: (msgspec.msgpack.Decoder(_TimeoutNowBody), lambda b: TimeoutNow(*b)),
    KIND_OF[ReadIndexRequest]: (
        msgspec.msgpack.Decoder(_ReadIndexRequestBody),
        lambda b: ReadIndexRequest(*b),
    ),
    KIND_OF[ReadIndexReply]: (
        msgspec.msgpack.Decoder(_ReadIndexReplyBody),
        lambda b: ReadIndexReply(*b),
    ),
    KIND_OF[ProposeRequest]: (msgspec.msgpack.Decoder(_ProposeRequestBody), _propose_request),
    KIND_OF[ProposeReply]: (
        msgspec.msgpack.Decoder(_ProposeReplyBody),
        lambda b: ProposeReply(*b),
    ),
}
_ENCODER: Final = msgspec.msgpack.Encoder()


def encode_frame(msg: Message, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Encode ``msg`` as one complete frame, length prefix included.

    :param msg: any message of :data:`replobj.raft.messages.MESSAGE_TYPES`.
    :param max_frame_bytes: refuse frames longer than this (length prefix excluded).
    :raises ~replobj.errors.FrameTooLargeError: if the frame would exceed ``max_frame_bytes``;
        the caller should lower ``RaftOptions.max_append_bytes`` / ``snapshot_chunk_bytes``.
    :raises TypeError: if ``msg`` is not a Raft message.
    """
    kind = KIND_OF.get(type(msg))
    if kind is None:
        raise TypeError(f"not a Raft message: {type(msg).__name__}")
    buf = bytearray(FRAME_HEADER_BYTES)
    _ENCODER.encode_into(_body_of(msg), buf, FRAME_HEADER_BYTES)
    length = len(buf) - PREFIX_BYTES
    if length > max_frame_bytes:
        raise FrameTooLargeError(
            f"{type(msg).__name__} needs a {length}-byte frame, above the {max_frame_bytes}-byte "
            "limit; lower RaftOptions.max_append_bytes or snapshot_chunk_bytes"
        )
    _HEADER.pack_into(buf, 0, length, WIRE_VERSION, kind)
    return bytes(buf)


def frame_length(prefix: bytes | bytearray | memoryview, max_frame_bytes: int) -> int:
    """Read a frame's length prefix and check it before anything is allocated for the body.

    :param prefix: at least :data:`PREFIX_BYTES` bytes; only the first four are read.
    :param max_frame_bytes: the largest length accepted.
    :returns: the number of bytes that follow the prefix.
    :raises ~replobj.errors.FrameTooLargeError: if the announced length exceeds the limit.
    :raises ~replobj.errors.ProtocolError: if the prefix is short or announces under two bytes.
    """
    if len(prefix) < PREFIX_BYTES:
        raise ProtocolError(f"truncated length prefix ({len(prefix)} of {PREFIX_BYTES} bytes)")
    (length,) = _PREFIX.unpack_from(prefix)
    if length > max_frame_bytes:
        raise FrameTooLargeError(
            f"peer announced a {length}-byte frame, above the {max_frame_bytes}-byte limit"
        )
    if length < 2:
        raise ProtocolError(f"frame length {length} is too short for version and kind bytes")
    return int(length)


def _decode_body(version: int, kind: int, body: memoryview) -> Message:
    if version != WIRE_VERSION:
        raise ProtocolError(f"frame has wire version {version}, this node speaks {WIRE_VERSION}")
    entry = _DECODERS.get(kind)
    if entry is None:
        raise ProtocolError(f"unknown message kind {kind}")
    decoder, build = entry
    try:
        msg = build(decoder.decode(body))
        _check_name(msg.sender)
        return msg
    except (msgspec.DecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise ProtocolError(f"malformed body for message kind {kind}: {exc}") from exc


def iter_frames(
    data: bytes | bytearray | memoryview, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> Iterator[Message]:
    """Decode back-to-back frames that fill ``data`` exactly, lazily, in order.

    :raises ~replobj.errors.ProtocolError: on the first malformed, truncated or trailing frame.
    """
    for item in decode_each(data, max_frame_bytes):
        if isinstance(item, ProtocolError):
            raise item
        yield item


def decode_each(
    data: bytes | bytearray | memoryview, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> Iterator[Message | ProtocolError]:
    """Like :func:`iter_frames`, but a frame whose body is invalid (a value out of range, a
    bad node id) yields its :class:`~replobj.errors.ProtocolError` instead of ending the
    iteration: its length is known, so the frames after it still decode. For an
    authenticated peer, whose one bad message must not cost the link.

    :raises ~replobj.errors.ProtocolError: if the framing itself is broken (truncated or
        trailing bytes, a length over the limit); nothing after that point can be trusted.
    """
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        length = frame_length(view[pos : pos + PREFIX_BYTES], max_frame_bytes)
        end = pos + PREFIX_BYTES + length
        if end > len(view):
            raise ProtocolError(f"frame announces {length} bytes, only {len(view) - pos - 4} left")
        try:
            yield _decode_body(view[pos + 4], view[pos + 5], view[pos + FRAME_HEADER_BYTES : end])
        except ProtocolError as exc:
            yield exc
        pos = end


def decode_frames(
    data: bytes | bytearray | memoryview, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> list[Message]:
    """Decode back-to-back frames that fill ``data`` exactly.

    :param data: concatenated frames, each with its length prefix.
    :param max_frame_bytes: the largest frame accepted (length prefix excluded).
    :raises ~replobj.errors.FrameTooLargeError: if a frame announces more than the limit.
    :raises ~replobj.errors.ProtocolError: if any byte is not part of a valid frame.
    """
    return list(iter_frames(data, max_frame_bytes))


def decode_frame(
    data: bytes | bytearray | memoryview, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> Message:
    """Decode exactly one frame (length prefix included) into its message.

    :raises ~replobj.errors.FrameTooLargeError: if the frame announces more than the limit.
    :raises ~replobj.errors.ProtocolError: if ``data`` is not exactly one valid frame.
    """
    view = memoryview(data)
    length = frame_length(view, max_frame_bytes)
    if len(view) != PREFIX_BYTES + length:
        raise ProtocolError(f"frame announces {length} bytes but carries {len(view) - 4}")
    return _decode_body(view[4], view[5], view[FRAME_HEADER_BYTES:])
