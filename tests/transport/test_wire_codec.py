"""Round-trip and fuzz tests of the wire codec: untrusted bytes only ever raise ProtocolError."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from wire_strategies import messages, sample_messages

from replobj.errors import FrameTooLargeError, ProtocolError
from replobj.raft.messages import MESSAGE_TYPES, AppendEntries, Message, TimeoutNow
from replobj.raft.types import Entry
from replobj.transport.codec import (
    FRAME_HEADER_BYTES,
    KIND_OF,
    WIRE_VERSION,
    decode_frame,
    decode_frames,
    encode_frame,
    frame_length,
)


def _decode_or_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_frames(data, max_frame_bytes=1 << 16)


def test_samples_cover_every_message_kind() -> None:
    assert {type(m) for m in sample_messages("a")} == set(MESSAGE_TYPES)
    assert sorted(KIND_OF.values()) == list(range(1, len(MESSAGE_TYPES) + 1))


@pytest.mark.parametrize("msg", sample_messages("node-a"), ids=lambda m: type(m).__name__)
def test_sample_round_trip_and_header(msg: Message) -> None:
    frame = encode_frame(msg)
    length, version, kind = struct.unpack_from(">IBB", frame)
    assert (length, version, kind) == (len(frame) - 4, WIRE_VERSION, KIND_OF[type(msg)])
    assert decode_frame(frame) == msg


@given(messages)
@settings(max_examples=400, deadline=None)
def test_every_kind_round_trips(msg: Message) -> None:
    assert decode_frame(encode_frame(msg)) == msg


@given(st.lists(messages, max_size=6))
@settings(max_examples=100, deadline=None)
def test_concatenated_frames_round_trip(batch: list[Message]) -> None:
    assert decode_frames(b"".join(encode_frame(m) for m in batch)) == batch


@given(st.binary(max_size=300))
@settings(max_examples=1000, deadline=None)
@example(b"\x00\x00\x00\x02\x01\x03")
@example(b"\x00\x00\x00\x03\x01\x07\x90")
@example(b"\x00\x00\x00\x04\x01\x07\x92\xc0\xc0")
def test_random_bytes_raise_only_protocol_error(data: bytes) -> None:
    _decode_or_protocol_error(data)


@given(messages, st.data())
@settings(max_examples=300, deadline=None)
def test_truncated_frames_are_refused(msg: Message, data: st.DataObject) -> None:
    frame = encode_frame(msg)
    cut = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
    if cut == 0:
        assert decode_frames(frame[:0]) == []
        return
    with pytest.raises(ProtocolError):
        decode_frames(frame[:cut])


@given(messages, st.data())
@settings(max_examples=500, deadline=None)
def test_bit_flipped_frames_raise_only_protocol_error(msg: Message, data: st.DataObject) -> None:
    frame = bytearray(encode_frame(msg))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        bit = data.draw(st.integers(min_value=0, max_value=len(frame) * 8 - 1))
        frame[bit // 8] ^= 1 << (bit % 8)
    _decode_or_protocol_error(bytes(frame))


@given(st.integers(min_value=FRAME_HEADER_BYTES, max_value=2**32 - 1))
def test_oversized_length_prefix_is_refused_before_reading(length: int) -> None:
    header = struct.pack(">IBB", length, WIRE_VERSION, 1)
    with pytest.raises(FrameTooLargeError):
        frame_length(header, max_frame_bytes=FRAME_HEADER_BYTES - 1)


def test_hundred_megabyte_header_is_refused() -> None:
    with pytest.raises(FrameTooLargeError, match="104857600"):
        decode_frame(struct.pack(">IBB", 100 << 20, WIRE_VERSION, 1) + b"\x90")


def test_wrong_version_and_unknown_kind_are_refused() -> None:
    frame = bytearray(encode_frame(TimeoutNow(1, "a")))
    frame[4] = WIRE_VERSION + 1
    with pytest.raises(ProtocolError, match="wire version"):
        decode_frame(bytes(frame))
    frame[4], frame[5] = WIRE_VERSION, 200
    with pytest.raises(ProtocolError, match="unknown message kind"):
        decode_frame(bytes(frame))


def test_invalid_field_values_are_protocol_errors() -> None:
    good = encode_frame(AppendEntries(1, "a", 0, 0, (Entry(1, 1),), 0))
    zero_index = good.replace(b"\x94\x01\x01", b"\x94\x01\x00")
    assert zero_index != good
    with pytest.raises(ProtocolError, match="index"):
        decode_frame(zero_index)


def test_encode_refuses_frames_above_the_limit() -> None:
    msg = AppendEntries(1, "a", 0, 0, (Entry(1, 1, payload=b"x" * 100),), 0)
    with pytest.raises(FrameTooLargeError, match="max_append_bytes"):
        encode_frame(msg, max_frame_bytes=50)
