"""Values outside their range are refused by the codec, never passed on (issue 13, item 7).

An authenticated peer once sent AppendEntries with term 2^64-1; the store could not pack it
and the node failed on every restart.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from hypothesis import given, settings
from hypothesis import strategies as st
from transport_helpers import KEY, SECRET, receive_n, wait_until
from wire_strategies import messages

from replobj.errors import ProtocolError
from replobj.raft.messages import (
    AppendEntries,
    AppendEntriesReply,
    InstallSnapshot,
    Message,
    ProposeReply,
    ReadIndexRequest,
    RequestVote,
    TimeoutNow,
)
from replobj.raft.types import MAX_INDEX, MAX_NODE_ID_BYTES, MAX_TERM, Entry
from replobj.transport.auth import RecordSealer, client_handshake
from replobj.transport.codec import decode_frame, encode_frame
from replobj.transport.tcp import TcpTransport

too_big = st.integers(min_value=MAX_TERM + 1, max_value=2**64 - 1)
negative = st.integers(min_value=-(2**63), max_value=-1)
out_of_range = too_big | negative
beyond_int64 = st.integers(min_value=2**63, max_value=2**64 - 1)


def _refused(msg: Message) -> None:
    with pytest.raises(ProtocolError):
        decode_frame(encode_frame(msg))


def test_the_term_that_crashed_a_node_is_refused() -> None:
    _refused(AppendEntries(2**64 - 1, "a", 0, 0, (), 0))
    assert decode_frame(encode_frame(AppendEntries(MAX_TERM, "a", 0, 0, (), 0))).term == MAX_TERM


@given(messages, out_of_range)
@settings(max_examples=300, deadline=None)
def test_an_out_of_range_term_is_refused_for_every_kind(msg: Message, term: int) -> None:
    _refused(replace(msg, term=term))


@given(out_of_range, st.sampled_from(["prev_index", "prev_term", "leader_commit"]))
@settings(max_examples=200, deadline=None)
def test_append_entries_positions_are_bounded(value: int, field: str) -> None:
    _refused(replace(AppendEntries(1, "a", 0, 0, (), 0), **{field: value}))


@given(too_big)
@settings(max_examples=100, deadline=None)
def test_entry_terms_and_indices_are_bounded(value: int) -> None:
    _refused(AppendEntries(1, "a", 0, 0, (Entry(value, 1),), 0))
    _refused(AppendEntries(1, "a", 0, 0, (Entry(1, value),), 0))
    _refused(AppendEntriesReply(1, "a", True, match_index=value))
    _refused(RequestVote(1, "a", value, 0))


@given(beyond_int64)
@settings(max_examples=100, deadline=None)
def test_counters_and_request_ids_fit_a_signed_64_bit_integer(value: int) -> None:
    _refused(AppendEntries(1, "a", 0, 0, (), 0, seq=value))
    _refused(ReadIndexRequest(1, "a", value))
    _refused(ProposeReply(1, "a", 1, 1, 1, value))


def test_snapshot_offsets_are_bounded(sample_snapshot: InstallSnapshot) -> None:
    _refused(replace(sample_snapshot, offset=MAX_INDEX + 1))
    _refused(replace(sample_snapshot, offset=-1))


@pytest.fixture
def sample_snapshot() -> InstallSnapshot:
    """A valid snapshot chunk to alter one field of."""
    return next(m for m in _samples() if isinstance(m, InstallSnapshot))


def _samples() -> list[Message]:
    from wire_strategies import sample_messages

    return sample_messages("a")


@pytest.mark.parametrize(
    "sender",
    ["", "x" * (MAX_NODE_ID_BYTES + 1), "é" * (MAX_NODE_ID_BYTES // 2 + 1), "€" * 100],
    ids=["empty", "256-ascii", "256-bytes-of-2-byte-chars", "300-bytes-of-3-byte-chars"],
)
def test_node_ids_are_non_empty_and_at_most_255_utf8_bytes(sender: str) -> None:
    _refused(TimeoutNow(1, sender))
    _refused(replace(next(m for m in _samples() if isinstance(m, InstallSnapshot)), sender=sender))


def test_the_longest_node_id_passes() -> None:
    longest = "é" * (MAX_NODE_ID_BYTES // 2) + "x"
    assert len(longest.encode()) == MAX_NODE_ID_BYTES
    assert decode_frame(encode_frame(TimeoutNow(1, longest))) == TimeoutNow(1, longest)


@pytest.mark.anyio
async def test_an_out_of_range_message_is_dropped_and_the_link_stays(
    ports: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="replobj.transport")
    async with TcpTransport("a", ("127.0.0.1", ports[0]), {}, secret=SECRET) as a:
        stream = await anyio.connect_tcp("127.0.0.1", a.listen_address[1])
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            key = await client_handshake(stream, reader, key=KEY, node_id="x", peer_id="a")
            sealer = RecordSealer(key)
            bad = encode_frame(AppendEntries(2**64 - 1, "x", 0, 0, (), 0))
            await stream.send(sealer.seal(bad + encode_frame(TimeoutNow(1, "x"))))
            await stream.send(sealer.seal(bad))
            await stream.send(sealer.seal(encode_frame(TimeoutNow(2, "x"))))
            assert await receive_n(a, 2) == [TimeoutNow(1, "x"), TimeoutNow(2, "x")]
            await wait_until(lambda: a.stats.rejected_messages == 2, "two refused messages")
    assert "2 messages refused" in caplog.text or "refused a message" in caplog.text
