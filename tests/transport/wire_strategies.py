"""Hypothesis strategies and fixed samples for every Raft message kind."""

from __future__ import annotations

from hypothesis import strategies as st

from replobj.raft.messages import (
    MESSAGE_TYPES,
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
    ClusterConfig,
    Entry,
    EntryKind,
    RefusalReason,
    SnapshotMeta,
)

KINDS = len(MESSAGE_TYPES)
counts = st.integers(min_value=0, max_value=MAX_INDEX)
positive = st.integers(min_value=1, max_value=MAX_INDEX)
signed = st.integers(min_value=-(2**63), max_value=2**63 - 1)
names = st.text(min_size=1, max_size=20)
name_sets = st.frozensets(names, max_size=5)

entries = st.builds(Entry, positive, positive, st.sampled_from(EntryKind), st.binary(max_size=64))


@st.composite
def configs(draw: st.DrawFn) -> ClusterConfig:
    """A valid configuration: disjoint voters/learners, optional joint old voters."""
    voters = draw(name_sets)
    learners = draw(name_sets) - voters
    old = draw(st.none() | name_sets)
    old = None if old is None else old - learners
    promote = frozenset(n for n in learners if draw(st.booleans()))
    return ClusterConfig(voters, learners, old, promote)


refusals = ["", *(reason.value for reason in RefusalReason)]
metas = st.builds(SnapshotMeta, counts, counts, configs())

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(RequestVote, counts, names, counts, counts, st.booleans(), st.booleans()),
    st.builds(RequestVoteReply, counts, names, st.booleans(), st.booleans(), st.booleans(), counts),
    st.builds(
        AppendEntries,
        counts,
        names,
        counts,
        counts,
        st.lists(entries, max_size=5).map(tuple),
        counts,
        signed,
    ),
    st.builds(
        AppendEntriesReply, counts, names, st.booleans(), counts, counts, counts, counts, signed
    ),
    st.builds(
        InstallSnapshot, counts, names, metas, counts, st.binary(max_size=64), st.booleans(), signed
    ),
    st.builds(InstallSnapshotReply, counts, names, counts, counts, st.booleans(), signed),
    st.builds(TimeoutNow, counts, names),
    st.builds(ReadIndexRequest, counts, names, signed),
    st.builds(ReadIndexReply, counts, names, signed, counts, st.booleans()),
    st.builds(
        ProposeRequest,
        counts,
        names,
        signed,
        st.lists(st.binary(max_size=32), max_size=4).map(tuple),
    ),
    st.builds(
        ProposeReply, counts, names, signed, counts, counts, signed, st.sampled_from(refusals)
    ),
)


def sample_messages(sender: str) -> list[Message]:
    """One fixed message of every kind, sent by ``sender``."""
    config = ClusterConfig(frozenset({"a", "b"}), frozenset({"c"}), frozenset({"a"}), frozenset())
    meta = SnapshotMeta(10, 3, config)
    batch = (Entry(3, 11, EntryKind.COMMAND, b"\x00payload"), Entry(3, 12, EntryKind.NOOP))
    return [
        RequestVote(4, sender, 12, 3, pre_vote=True, transfer=False),
        RequestVoteReply(4, sender, granted=True, pre_vote=False),
        AppendEntries(3, sender, 10, 3, batch, 11, seq=9),
        AppendEntriesReply(3, sender, True, match_index=12, seq=9),
        InstallSnapshot(3, sender, meta, 0, b"snapshot-bytes", done=True, seq=2),
        InstallSnapshotReply(3, sender, 10, 14, done=True, seq=2),
        TimeoutNow(5, sender),
        ReadIndexRequest(5, sender, 77),
        ReadIndexReply(5, sender, 77, 12, ok=True),
        ProposeRequest(5, sender, 78, (b"cmd-1", b"", b"\xff" * 40)),
        ProposeReply(5, sender, 78, 5, 13, 3, refusal=""),
    ]
