"""Rules of the Raft paper (Ongaro & Ousterhout 2014), one test per rule, named by section.

As in etcd's ``raft_paper_test.go``, each test focuses on a few sentences of the paper,
quoted or paraphrased in its docstring. Pre-vote is off here so that elections follow
the paper exactly; the thesis extensions are tested in ``test_thesis.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from replobj.raft import (
    AppendLog,
    ApplyEntries,
    Entry,
    EntryKind,
    RaftOptions,
    ResetTimer,
    Role,
    SaveHardState,
    Send,
    TimerKind,
)
from replobj.raft.messages import (
    AppendEntries,
    AppendEntriesReply,
    RequestVote,
    RequestVoteReply,
)

from .harness import Cluster, Envelope, of_type, restored, sent

PAPER = RaftOptions(pre_vote=False)
ABC = ["a", "b", "c"]


def _elected(options: RaftOptions = PAPER) -> Cluster:
    """Three nodes that restarted in term 3 with empty logs; ``a`` is elected (term 4)."""
    cluster = Cluster.from_states({n: restored(ABC, term=3) for n in ABC}, options=options)
    cluster.elect("a")
    assert cluster.node("a").term == 4
    return cluster


# --- §5.1 Raft basics ------------------------------------------------------------------


def test_5_1_servers_start_as_followers_with_an_election_timer() -> None:
    """§5.1: "When servers start up, they begin as followers." """
    cluster = Cluster(ABC, options=PAPER)
    for node_id in ABC:
        node = cluster.node(node_id)
        assert node.role is Role.FOLLOWER
        assert node.term == 0
        assert node.leader is None
        assert ResetTimer(TimerKind.ELECTION) in cluster.trace(node_id)


def test_5_1_higher_term_makes_leader_step_down() -> None:
    """§5.1: "If a candidate or leader discovers that its term is out of date, it
    immediately reverts to follower state." The new term is saved first."""
    cluster = _elected()
    leader = cluster.node("a")
    term = leader.term
    newer = AppendEntries(term + 2, "b", 0, 0, (), 0)
    actions = cluster.send("b", "a", newer)
    assert leader.role is Role.FOLLOWER
    assert leader.term == term + 2
    assert leader.leader == "b"
    saves = of_type(actions, SaveHardState)
    assert saves
    assert saves[0].term == term + 2
    assert ResetTimer(TimerKind.ELECTION) in actions


def test_5_1_higher_term_reply_makes_leader_step_down() -> None:
    """§5.1: a reply carrying a higher term also deposes the leader (Figure 2, all servers)."""
    cluster = _elected()
    leader = cluster.node("a")
    term = leader.term
    cluster.send("c", "a", AppendEntriesReply(term + 1, "c", success=False))
    assert leader.role is Role.FOLLOWER
    assert leader.term == term + 1
    assert cluster.stores["a"].hard_state.term == term + 1


def test_5_1_stale_term_request_is_rejected() -> None:
    """§5.1: "If a server receives a request with a stale term number, it rejects the request." """
    cluster = _elected()
    follower = cluster.node("b")
    term = follower.term
    last = follower.last_index
    actions = cluster.send("x", "b", AppendEntries(term - 1, "c", 0, 0, (Entry(term - 1, 1),), 9))
    replies = sent(actions, AppendEntriesReply)
    assert replies
    assert not replies[0].success
    assert replies[0].term == term
    assert follower.last_index == last
    assert follower.term == term
    assert follower.leader == "a"
    assert not of_type(actions, AppendLog)
    vote = cluster.send("c", "b", RequestVote(term - 1, "c", 99, term))
    assert not any(r.granted for r in sent(vote, RequestVoteReply))


def test_5_1_candidate_returns_to_follower_on_append_from_leader_of_its_term() -> None:
    """§5.2: a candidate that receives AppendEntries from a leader whose term is at least
    as large as its own recognises the leader and returns to follower state."""
    cluster = Cluster(ABC, options=PAPER)
    cluster.timeout("b")
    candidate = cluster.node("b")
    assert candidate.role is Role.CANDIDATE
    cluster.send("c", "b", AppendEntries(candidate.term, "c", 0, 0, (), 0))
    assert cluster.node("b").role is Role.FOLLOWER
    assert cluster.node("b").leader == "c"


# --- §5.2 Leader election ----------------------------------------------------------------


def test_5_2_candidate_increments_term_votes_for_itself_and_requests_votes() -> None:
    """§5.2: "a follower increments its current term and transitions to candidate state. It
    then votes for itself and issues RequestVote RPCs in parallel" — the vote is durable
    before any RequestVote leaves (Figure 2, persistent state)."""
    cluster = Cluster(ABC, options=PAPER)
    actions = cluster.timeout("a")
    node = cluster.node("a")
    assert node.role is Role.CANDIDATE
    assert node.term == 1
    assert node.voted_for == "a"
    save = actions.index(SaveHardState(1, "a"))
    requests = [i for i, a in enumerate(actions) if isinstance(a, Send)]
    assert {a.to for a in actions if isinstance(a, Send)} == {"b", "c"}
    assert all(i > save for i in requests)
    assert sent(actions, RequestVote, to="b") == [RequestVote(1, "a", 0, 0)]
    assert ResetTimer(TimerKind.ELECTION) in actions


def test_5_2_follower_grants_one_vote_per_term() -> None:
    """§5.2: "Each server will vote for at most one candidate in a given term, on a
    first-come-first-served basis." A repeated request from the same candidate is granted
    again (the reply may have been lost)."""
    cluster = Cluster(ABC, options=PAPER)
    first = sent(cluster.send("b", "a", RequestVote(1, "b", 0, 0)), RequestVoteReply)
    second = sent(cluster.send("c", "a", RequestVote(1, "c", 0, 0)), RequestVoteReply)
    again = sent(cluster.send("b", "a", RequestVote(1, "b", 0, 0)), RequestVoteReply)
    assert [r.granted for r in first + second + again] == [True, False, True]
    assert cluster.node("a").voted_for == "b"
    assert cluster.stores["a"].hard_state.voted_for == "b"
    later = sent(cluster.send("c", "a", RequestVote(2, "c", 0, 0)), RequestVoteReply)
    assert [r.granted for r in later] == [True]


def test_5_2_vote_saved_before_reply_is_sent() -> None:
    """Figure 2: currentTerm and votedFor are updated on stable storage before responding."""
    cluster = Cluster(ABC, options=PAPER)
    actions = cluster.send("b", "a", RequestVote(3, "b", 0, 0))
    save = actions.index(SaveHardState(3, "b"))
    reply = next(i for i, a in enumerate(actions) if isinstance(a, Send))
    assert save < reply


def test_5_2_granting_a_vote_resets_the_election_timer_denying_does_not() -> None:
    """Figure 2 (followers): convert to candidate if the election timeout elapses "without
    receiving AppendEntries RPC from current leader or granting vote to candidate"."""
    cluster = Cluster.from_states({n: restored(ABC, term=2) for n in ABC}, options=PAPER)
    granted = cluster.send("b", "a", RequestVote(2, "b", 0, 0))
    assert [r.granted for r in sent(granted, RequestVoteReply)] == [True]
    assert ResetTimer(TimerKind.ELECTION) in granted
    denied = cluster.send("c", "a", RequestVote(2, "c", 0, 0))
    assert [r.granted for r in sent(denied, RequestVoteReply)] == [False]
    assert ResetTimer(TimerKind.ELECTION) not in denied


def test_5_2_candidate_with_majority_becomes_leader_and_asserts_authority() -> None:
    """§5.2: "A candidate wins an election if it receives votes from a majority ... Once a
    candidate wins, it becomes leader. It then sends heartbeat messages to all of the
    other servers to establish its authority." """
    ids = ["a", "b", "c", "d", "e"]
    cluster = Cluster(ids, options=PAPER)
    cluster.timeout("a")
    cluster.drop(to="d")
    cluster.drop(to="e")
    cluster.deliver(kind=RequestVote)
    cluster.deliver(kind=RequestVoteReply, limit=1)
    assert cluster.node("a").role is Role.CANDIDATE
    before = len(cluster.trace("a"))
    cluster.deliver(kind=RequestVoteReply)
    assert cluster.node("a").role is Role.LEADER
    assert cluster.node("a").leader == "a"
    after = cluster.trace("a")[before:]
    assert {s.to for s in of_type(after, Send) if isinstance(s.message, AppendEntries)} == {
        "b",
        "c",
        "d",
        "e",
    }
    assert ResetTimer(TimerKind.HEARTBEAT) in after


def test_5_2_denied_votes_do_not_elect() -> None:
    """§5.2: a candidate without a majority of granted votes stays a candidate."""
    cluster = Cluster(ABC, options=PAPER)
    cluster.timeout("a")
    term = cluster.node("a").term
    cluster.drop(kind=RequestVote)
    cluster.send("b", "a", RequestVoteReply(term, "b", granted=False))
    cluster.send("c", "a", RequestVoteReply(term, "c", granted=False))
    assert cluster.node("a").role is Role.CANDIDATE


def test_5_2_split_vote_starts_a_new_election_in_a_new_term() -> None:
    """§5.2: "each candidate will time out and start a new election by incrementing its term." """
    cluster = Cluster(ABC, options=PAPER)
    cluster.timeout("a")
    cluster.drop()
    actions = cluster.timeout("a")
    assert cluster.node("a").role is Role.CANDIDATE
    assert cluster.node("a").term == 2
    assert {m.term for m in sent(actions, RequestVote)} == {2}


def test_5_2_follower_resets_election_timer_on_append_from_leader() -> None:
    """§5.2: "A server remains in follower state as long as it receives valid RPCs from a
    leader or candidate." Each heartbeat re-arms the election timer."""
    cluster = _elected()
    cluster.timeout("a")
    before = len(cluster.trace("b"))
    cluster.deliver(kind=AppendEntries, to="b")
    assert ResetTimer(TimerKind.ELECTION) in cluster.trace("b")[before:]
    assert cluster.node("b").role is Role.FOLLOWER


def test_5_2_leader_heartbeat_timer_sends_append_entries_to_every_follower() -> None:
    """§5.2: leaders send periodic heartbeats (AppendEntries with no entries)."""
    cluster = _elected()
    actions = cluster.timeout("a")
    assert {s.to for s in of_type(actions, Send) if isinstance(s.message, AppendEntries)} == {
        "b",
        "c",
    }
    assert cluster.node("a").role is Role.LEADER


def test_5_2_vote_survives_restart() -> None:
    """Figure 2: votedFor is persistent, so a restarted server does not vote twice in a term."""
    cluster = Cluster(ABC, options=PAPER)
    cluster.send("b", "a", RequestVote(4, "b", 0, 0))
    node = cluster.restart("a")
    assert node.term == 4
    assert node.voted_for == "b"
    replies = sent(cluster.send("c", "a", RequestVote(4, "c", 0, 0)), RequestVoteReply)
    assert [r.granted for r in replies] == [False]


# --- §5.3 Log replication ----------------------------------------------------------------


def test_5_3_leader_appends_proposal_replicates_commits_and_applies() -> None:
    """§5.3: the leader appends the command to its log, issues AppendEntries in parallel,
    and once the entry is replicated on a majority it is committed and applied."""
    cluster = _elected()
    leader = cluster.node("a")
    proposal = cluster.node("a").propose(b"x")
    actions = cluster.drain("a")
    appended = [e for a in of_type(actions, AppendLog) for e in a.entries]
    assert appended == [Entry(leader.term, leader.last_index, EntryKind.COMMAND, b"x")]
    for follower in ("b", "c"):
        carried = [e for m in sent(actions, AppendEntries, to=follower) for e in m.entries]
        assert appended[0] in carried
    assert proposal
    cluster.deliver_all()
    assert leader.commit_index == appended[0].index
    assert cluster.applied_payloads("a") == [b"x"]
    cluster.heartbeat("a")
    assert cluster.applied_payloads("b") == [b"x"]
    assert cluster.applied_payloads("c") == [b"x"]


def test_5_3_follower_rejects_append_when_prev_entry_is_missing() -> None:
    """§5.3: "If the follower does not find an entry in its log with the same index and
    term, then it refuses the new entries." The hint points into its log."""
    cluster = _elected()
    follower = cluster.node("b")
    term = follower.term
    last = follower.last_index
    actions = cluster.send("a", "b", AppendEntries(term, "a", last + 7, term, (), 0))
    replies = sent(actions, AppendEntriesReply)
    assert len(replies) == 1
    assert not replies[0].success
    assert replies[0].hint_index <= last
    assert follower.last_index == last
    assert not of_type(actions, AppendLog)


def test_5_3_follower_rejects_append_when_prev_term_differs() -> None:
    """§5.3 consistency check: same index but a different term is a mismatch."""
    cluster = Cluster.from_states(
        {
            "a": restored(ABC, 1, 3, term=3),
            "b": restored(ABC, 1, 2, term=3),
            "c": restored(ABC, 1, term=3),
        },
        options=PAPER,
    )
    actions = cluster.send("a", "b", AppendEntries(3, "a", 2, 3, (), 0))
    replies = sent(actions, AppendEntriesReply)
    assert [r.success for r in replies] == [False]
    assert replies[0].hint_index <= 2
    assert cluster.node("b").term_at(2) == 2


def test_5_3_follower_truncates_only_on_conflict() -> None:
    """§5.3 / Figure 2 receiver rule 3: "If an existing entry conflicts with a new one (same
    index but different terms), delete the existing entry and all that follow it." """
    cluster = Cluster.from_states(
        {
            "a": restored(ABC, 1, 2, term=2),
            "b": restored(ABC, 1, 1, 1, term=1),
            "c": restored(ABC, 1, term=1),
        },
        options=PAPER,
    )
    actions = cluster.send("a", "b", AppendEntries(2, "a", 1, 1, (Entry(2, 2),), 0))
    follower = cluster.node("b")
    appends = of_type(actions, AppendLog)
    assert [a.entries[0].index for a in appends] == [2]
    assert follower.last_index == 2
    assert follower.term_at(2) == 2
    assert follower.term_at(3) is None
    assert sorted(cluster.stores["b"].log) == [1, 2]
    replies = sent(actions, AppendEntriesReply)
    assert replies[-1].success
    assert replies[-1].match_index == 2


def test_5_3_stale_shorter_append_does_not_truncate() -> None:
    """Figure 2 receiver rule 3 applies only to conflicts: a delayed AppendEntries carrying
    a prefix of what the follower already holds must not cut the entries after it."""
    cluster = Cluster(ABC, options=PAPER)
    cluster.send("a", "b", RequestVote(1, "a", 0, 0))
    full = AppendEntries(1, "a", 0, 0, (Entry(1, 1), Entry(1, 2), Entry(1, 3)), 0)
    stale = AppendEntries(1, "a", 0, 0, (Entry(1, 1),), 0)
    cluster.send("a", "b", full)
    follower = cluster.node("b")
    assert follower.last_index == 3
    actions = cluster.send("a", "b", stale)
    assert follower.last_index == 3
    assert [follower.term_at(i) for i in (1, 2, 3)] == [1, 1, 1]
    assert all(a.entries[0].index > 3 for a in of_type(actions, AppendLog))
    assert sorted(cluster.stores["b"].log) == [1, 2, 3]
    replies = sent(actions, AppendEntriesReply)
    assert replies
    assert replies[0].success


def test_5_3_duplicated_append_is_idempotent() -> None:
    """§5.3: AppendEntries is idempotent; a duplicate changes nothing and is acknowledged."""
    cluster = Cluster(ABC, options=PAPER)
    message = AppendEntries(1, "a", 0, 0, (Entry(1, 1), Entry(1, 2)), 1)
    cluster.send("a", "b", message)
    actions = cluster.send("a", "b", message)
    follower = cluster.node("b")
    assert follower.last_index == 2
    assert not of_type(actions, AppendLog)
    replies = sent(actions, AppendEntriesReply)
    assert [(r.success, r.match_index) for r in replies] == [(True, 2)]


def test_5_3_follower_commit_is_bounded_by_last_new_entry() -> None:
    """Figure 2 receiver rule 5: "If leaderCommit > commitIndex, set commitIndex =
    min(leaderCommit, index of last new entry)"."""
    cluster = Cluster(ABC, options=PAPER)
    cluster.send("a", "b", AppendEntries(1, "a", 0, 0, (Entry(1, 1),), 5))
    follower = cluster.node("b")
    assert follower.commit_index == 1
    applied = [e.index for a in of_type(cluster.trace("b"), ApplyEntries) for e in a.entries]
    assert applied == [1]


def test_5_3_follower_commit_never_decreases_on_delayed_append() -> None:
    """Commit index is monotonic: a delayed AppendEntries with a lower leaderCommit is harmless."""
    cluster = Cluster(ABC, options=PAPER)
    entries = (Entry(1, 1), Entry(1, 2), Entry(1, 3))
    cluster.send("a", "b", AppendEntries(1, "a", 0, 0, entries, 3))
    assert cluster.node("b").commit_index == 3
    cluster.send("a", "b", AppendEntries(1, "a", 0, 0, entries[:1], 1))
    assert cluster.node("b").commit_index == 3
    assert cluster.node("b").last_index == 3


def test_5_3_leader_backs_up_until_logs_match_and_repairs_follower() -> None:
    """§5.3: "After a rejection, the leader decrements nextIndex and retries ... Eventually
    nextIndex will reach a point where the leader and follower logs match", and the
    follower's conflicting entries are replaced by the leader's."""
    cluster = Cluster.from_states(
        {
            "a": restored(ABC, 1, 1, 4, 4, 5, 5, 6, 6, 6, term=6),
            "b": restored(ABC, 1, 1, 4, 4, 4, 4, 4, term=4),
            "c": restored(ABC, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, term=3),
        },
        options=PAPER,
    )
    cluster.elect("a")
    leader_terms = [
        cluster.node("a").term_at(i) for i in range(1, cluster.node("a").last_index + 1)
    ]
    for follower in ("b", "c"):
        node = cluster.node(follower)
        terms = [node.term_at(i) for i in range(1, node.last_index + 1)]
        assert terms == leader_terms, follower
    assert cluster.node("a").commit_index == cluster.node("a").last_index


def test_5_3_lost_append_is_retried() -> None:
    """§5.3: "the leader retries AppendEntries RPCs indefinitely ... until all followers
    eventually store all log entries." """
    cluster = _elected()
    cluster.propose("a", b"lost")
    cluster.drop(kind=AppendEntries)
    assert cluster.node("a").commit_index < cluster.node("a").last_index
    cluster.heartbeat("a")
    cluster.heartbeat("a")
    leader = cluster.node("a")
    assert leader.commit_index == leader.last_index
    assert cluster.applied_payloads("b") == [b"lost"]


def test_5_3_stale_replies_do_not_lower_match_or_commit_index() -> None:
    """matchIndex and commitIndex only grow (Figure 2: "increases monotonically"): a
    duplicated or delayed reply, successful or not, is recognised as stale."""
    cluster = _elected()
    leader = cluster.node("a")
    cluster.propose("a", b"one")
    cluster.deliver(kind=AppendEntries)
    old_replies = cluster.messages(kind=AppendEntriesReply)
    cluster.deliver_all()
    cluster.commit("a", [b"two", b"three"])
    match_before = {p: s.match_index for p, s in leader.status().peers.items()}
    commit_before = leader.commit_index
    assert commit_before == leader.last_index
    for env in old_replies:
        cluster.inject(env)
        cluster.inject(env)
    term = leader.term
    cluster.send("b", "a", AppendEntriesReply(term, "b", False, 0, 1, 1, 1))
    cluster.send("b", "a", AppendEntriesReply(term, "b", True, 1))
    match_after = {p: s.match_index for p, s in leader.status().peers.items()}
    assert match_after["b"] >= match_before["b"]
    assert match_after["c"] >= match_before["c"]
    assert leader.commit_index == commit_before
    assert leader.role is Role.LEADER
    cluster.heartbeat("a")
    assert leader.status().peers["b"].match_index == leader.last_index


# --- §5.4 Safety -------------------------------------------------------------------------


def test_5_4_1_vote_denied_to_less_up_to_date_log() -> None:
    """§5.4.1: "the voter denies its vote if its own log is more up-to-date than that of the
    candidate": a later last term wins; with equal last terms the longer log wins."""
    cluster = Cluster.from_states(
        {"a": restored(ABC, 1, 2, 2, term=2), "b": restored(ABC), "c": restored(ABC)},
        options=PAPER,
    )
    lower_term = cluster.send("b", "a", RequestVote(3, "b", 9, 1))
    shorter = cluster.send("c", "a", RequestVote(4, "c", 2, 2))
    assert [r.granted for r in sent(lower_term + shorter, RequestVoteReply)] == [False, False]
    assert cluster.node("a").voted_for is None
    assert cluster.node("a").term == 4


def test_5_4_1_vote_granted_to_at_least_as_up_to_date_log() -> None:
    """§5.4.1: equal logs, or a later last term even if shorter, are up to date enough."""
    cluster = Cluster.from_states(
        {"a": restored(ABC, 1, 2, 2, term=2), "b": restored(ABC), "c": restored(ABC)},
        options=PAPER,
    )
    equal = cluster.send("b", "a", RequestVote(3, "b", 3, 2))
    later = cluster.send("c", "a", RequestVote(4, "c", 1, 3))
    assert [r.granted for r in sent(equal + later, RequestVoteReply)] == [True, True]
    assert cluster.node("a").voted_for == "c"


def test_5_4_2_new_leader_appends_noop_of_its_term() -> None:
    """§5.4.2/§8: a leader commits entries of earlier terms only through an entry of its
    own term, so it appends a no-op as soon as it is elected."""
    cluster = Cluster.from_states(
        {"a": restored(ABC, 1, 1), "b": restored(ABC, 1), "c": restored(ABC, 1)},
        options=PAPER,
    )
    cluster.elect("a")
    leader = cluster.node("a")
    noop = [e for a in of_type(cluster.trace("a"), AppendLog) for e in a.entries]
    # No entry of this log states the configuration (only the snapshot does): the term's
    # first entry restates it, which serves as the no-op.
    assert noop[0] == Entry(leader.term, 3, EntryKind.CONFIG, leader.config.encode())
    assert leader.commit_index == 3
    applied = [e.index for a in of_type(cluster.trace("a"), ApplyEntries) for e in a.entries]
    assert applied == [1, 2, 3]


def test_5_4_2_leader_never_commits_old_term_entry_by_counting() -> None:
    """§5.4.2, Figure 8: "Raft never commits log entries from previous terms by counting
    replicas." Entry 2 (term 2) reaches a majority while the leader's term-3 no-op has not:
    the commit index must stay below 2 until the no-op itself is on a majority."""
    options = RaftOptions(pre_vote=False, max_append_entries=1)
    cluster = Cluster.from_states(
        {"a": restored(ABC, 1, 2, term=2), "b": restored(ABC, 1, term=2), "c": restored(ABC, 1)},
        options=options,
    )
    cluster.timeout("a")
    cluster.deliver_all(kind=(RequestVote, RequestVoteReply))
    leader = cluster.node("a")
    assert leader.role is Role.LEADER
    assert leader.term == 3
    cluster.isolate("c")
    replicate_withholding(cluster, "a", 3, until=lambda: cluster.node("b").term_at(2) == 2)
    seen_old_on_majority = cluster.node("b").term_at(2) == 2
    assert seen_old_on_majority
    assert leader.status().peers["b"].match_index == 2
    assert leader.commit_index == 0
    cluster.heal()
    cluster.heartbeat("a")
    cluster.heartbeat("a")
    assert leader.commit_index == 3
    applied = [e.index for a in of_type(cluster.trace("a"), ApplyEntries) for e in a.entries]
    assert applied == [1, 2, 3]


def test_5_4_2_figure_8_uncommitted_old_entry_may_be_overwritten() -> None:
    """§5.4.2, Figure 8 (c)-(d): S1 (term 4) has put entry 2 of term 2 on a majority but
    must not commit it; S5 (last term 3) can still be elected and overwrite it."""
    ids = ["s1", "s2", "s3", "s4", "s5"]
    options = RaftOptions(pre_vote=False, check_quorum=False, max_append_entries=1)
    cluster = Cluster.from_states(
        {
            "s1": restored(ids, 1, 2, term=3),
            "s2": restored(ids, 1, 2, term=3),
            "s3": restored(ids, 1, term=3),
            "s4": restored(ids, 1, term=3),
            "s5": restored(ids, 1, 3, term=3),
        },
        options=options,
    )
    cluster.isolate("s5")
    cluster.timeout("s1")
    cluster.deliver_all(kind=(RequestVote, RequestVoteReply))
    s1 = cluster.node("s1")
    assert s1.role is Role.LEADER
    assert s1.term == 4
    replicate_withholding(
        cluster,
        "s1",
        4,
        until=lambda: all(cluster.node(n).term_at(2) == 2 for n in ("s3", "s4")),
    )
    assert cluster.node("s3").term_at(2) == 2
    assert cluster.node("s4").term_at(2) == 2
    assert s1.commit_index == 0
    cluster.crash("s1")
    cluster.network.clear()
    cluster.heal()
    cluster.isolate("s1")
    cluster.elect("s5")
    s5 = cluster.node("s5")
    assert s5.role is Role.LEADER
    for node_id in ("s2", "s3", "s4", "s5"):
        assert cluster.node(node_id).term_at(2) == 3, node_id
    applied = [e for a in of_type(cluster.trace("s1"), ApplyEntries) for e in a.entries]
    assert all(e.index < 2 or e.term != 2 for e in applied)


def replicate_withholding(
    cluster: Cluster, leader: str, term: int, until: Callable[[], bool]
) -> None:
    """Run replication while no follower may accept an entry of ``term``; check that the
    leader commits nothing meanwhile (its only entry of ``term`` is not on a majority)."""

    def would_accept_new_entry(env: Envelope) -> bool:
        message = env.message
        if not isinstance(message, AppendEntries):
            return False
        if not any(e.term == term for e in message.entries):
            return False
        return cluster.node(env.dst).term_at(message.prev_index) == message.prev_term

    for _ in range(60):
        cluster.drop(where=would_accept_new_entry)
        if not cluster.deliver(limit=1):
            if until():
                return
            cluster.timeout(leader)
        assert cluster.node(leader).commit_index == 0
    raise AssertionError("replication did not reach the expected state")


# --- §5.5 Follower and candidate crashes -------------------------------------------------


def test_5_5_restarted_follower_is_brought_up_to_date() -> None:
    """§5.5: "If a follower or candidate crashes, then future RequestVote and AppendEntries
    RPCs sent to it will fail. Raft handles these failures by retrying indefinitely." """
    cluster = _elected()
    cluster.crash("c")
    cluster.commit("a", [b"p", b"q"])
    assert cluster.node("a").commit_index == cluster.node("a").last_index
    cluster.restart("c")
    cluster.heartbeat("a")
    cluster.heartbeat("a")
    assert cluster.node("c").last_index == cluster.node("a").last_index
    assert cluster.applied_payloads("c") == [b"p", b"q"]


def test_5_3_reordered_appends_converge_without_harm() -> None:
    """§5.3/§5.5: messages may arrive out of order; a later AppendEntries arriving first is
    refused by the consistency check and the log still converges to the leader's."""
    cluster = _elected(RaftOptions(pre_vote=False, max_append_entries=1))
    for payload in (b"1", b"2", b"3", b"4"):
        cluster.node("a").propose(payload)
    cluster.drain("a")
    to_b = cluster.drop(kind=AppendEntries, to="b")
    assert len(to_b) >= 2
    for env in reversed(to_b):
        cluster.inject(env)
    cluster.deliver_all()
    cluster.heartbeat("a")
    cluster.heartbeat("a")
    assert cluster.applied_payloads("b") == [b"1", b"2", b"3", b"4"]
    assert cluster.node("a").commit_index == cluster.node("a").last_index
