"""A member restarted on an empty data directory (its disk wiped or replaced) under its old id.

Raft assumes a server never forgets what it acknowledged or whom it voted for. A member
whose data directory is lost comes back with an empty log; if it voted like any member it
could elect a candidate that lacks an entry it had acknowledged (and helped commit) before.
The guard (``RaftNode._vote_withheld``): a member restarted to join (``Node(join=True)``,
``RestoredState.joining()``, the documented way to restart a wiped member) votes for nobody
until a leader has told it the commit index (``HardState.catch_up_to``) and its durable log
got there. The leader notices the lost log (a rejection newer than the member's last
acknowledgement) and sends it again. A founder with an empty log votes as usual: it cannot
tell a wipe from a first start, and withholding would stall legitimate elections.
"""

from __future__ import annotations

from replobj.raft import RaftOptions, RestoredState, Role

from .harness import Cluster

ABC = ["a", "b", "c"]


def _commit_on_a_and_c_only(cluster: Cluster, before: int = 1) -> int:
    """Commit ``before`` entries everywhere, then one that only a (leader) and c hold."""
    cluster.elect("a")
    cluster.commit("a", [b"everyone-%d" % i for i in range(before)])
    cluster.isolate("b")
    (proposal,) = cluster.commit("a", [b"only-a-and-c"])
    assert cluster.node("a").commit_index >= proposal.index
    assert cluster.node("b").last_index < proposal.index
    return proposal.index


def _campaign(cluster: Cluster, node_id: str, rounds: int = 4) -> None:
    for _ in range(rounds):
        cluster.timeout(node_id)
        cluster.deliver_all()


def test_wiped_member_restarted_to_join_does_not_elect_a_candidate_missing_its_entry() -> None:
    cluster = Cluster(ABC)
    index = _commit_on_a_and_c_only(cluster)
    cluster.restore("c", RestoredState.joining())  # c's disk was wiped
    cluster.crash("a")
    cluster.heal()
    _campaign(cluster, "b")
    assert cluster.node("b").role is not Role.LEADER, (
        f"b was elected without the committed entry {index} (c forgot it had acknowledged it)"
    )
    _campaign(cluster, "c")
    assert cluster.leader() is None, "a member restarted on an empty store stood for election"

    cluster.restart("a")  # the member that still holds the entry comes back
    leader = cluster.elect("a")
    cluster.heartbeat("a")
    assert leader.commit_index >= index
    for node_id in ABC:
        assert b"only-a-and-c" in cluster.applied_payloads(node_id), node_id


def test_catch_up_point_survives_a_restart_in_the_middle_of_catching_up() -> None:
    cluster = Cluster(ABC, options=RaftOptions(max_append_entries=1))
    index = _commit_on_a_and_c_only(cluster, before=6)
    cluster.restore("c", RestoredState.joining())
    cluster.timeout("a")  # heartbeat: c learns the leader's commit index
    while cluster.node("c").last_index < 2:  # one entry per message: stop after two
        assert cluster.deliver(limit=1), "the leader stopped sending to c"
    assert cluster.stores["c"].hard_state.catch_up_to > 0
    cluster.restart("c")  # crash again, before the log reached that point
    c = cluster.node("c")
    assert 0 < c.last_index < index
    assert c.persisted_index < cluster.stores["c"].hard_state.catch_up_to
    cluster.drop(to="c")
    cluster.crash("a")
    cluster.heal()
    _campaign(cluster, "b")
    _campaign(cluster, "c")
    assert cluster.leader() is None, f"elected without entry {index}: {cluster.leader()}"


def test_wiped_member_votes_again_once_it_holds_what_was_committed() -> None:
    cluster = Cluster(ABC)
    cluster.elect("a")
    cluster.commit("a", [b"x-%d" % i for i in range(3)])
    cluster.restore("c", RestoredState.joining())
    cluster.heartbeat("a")
    cluster.heartbeat("a")
    c = cluster.node("c")
    assert c.persisted_index >= cluster.stores["c"].hard_state.catch_up_to > 0
    cluster.crash("a")
    cluster.expire_followers(besides="b")  # c stops trusting the dead leader
    _campaign(cluster, "b")
    assert cluster.leader() == "b", "the caught-up member should vote again"


def test_founder_started_late_votes_as_usual() -> None:
    """A founder whose log is still empty (it started after the others) is not treated as
    wiped: with a member down, its vote still elects a candidate that has the log."""
    cluster = Cluster(ABC)
    cluster.crash("c")
    cluster.elect("a")
    cluster.commit("a", [b"before-c-started-%d" % i for i in range(3)])
    cluster.crash("a")
    cluster.restore("c", RestoredState.bootstrap(set(ABC)))  # first start, empty directory
    _campaign(cluster, "b")
    assert cluster.leader() == "b"
    assert cluster.stores["c"].hard_state.catch_up_to == 0


def test_wiped_member_and_a_member_cut_off_since_birth_elect_once_the_cluster_heals() -> None:
    """b never received anything; c, wiped, is restarted to join. b's empty log must not win
    with c's vote, and once a is reachable again a is elected and refills c."""
    cluster = Cluster(ABC)
    cluster.isolate("b")
    cluster.elect("a")
    (proposal,) = cluster.commit("a", [b"only-a-and-c"])
    assert cluster.node("b").last_index == 0
    cluster.restore("c", RestoredState.joining())
    cluster.isolate("a")
    _campaign(cluster, "b")
    assert cluster.leader() in {None, "a"}, "b won with the wiped member's vote"
    assert cluster.node("c").voted_for is None
    cluster.heal()
    cluster.expire_followers(besides="a")
    for _ in range(4):
        if cluster.node("a").role is Role.LEADER:
            break
        _campaign(cluster, "a", rounds=1)
    assert cluster.node("a").role is Role.LEADER, "the cluster stayed without a leader"
    for _ in range(3):
        cluster.heartbeat("a")
    for node_id in ABC:
        assert b"only-a-and-c" in cluster.applied_payloads(node_id), node_id
    assert cluster.node("c").last_index >= proposal.index


def test_brand_new_cluster_still_elects_from_empty_logs() -> None:
    cluster = Cluster(ABC)
    cluster.elect("b")
    assert all(cluster.stores[n].hard_state.catch_up_to == 0 for n in ABC)


def test_leader_refills_a_member_that_lost_its_log_without_a_leader_change() -> None:
    """The leader believed c held everything; c's fresh rejection (newer than its last
    acknowledgement) makes the leader forget c's match index and send the log again."""
    cluster = Cluster(ABC)
    cluster.elect("a")
    cluster.commit("a", [b"x-%d" % i for i in range(5)])
    before = cluster.node("a").status().peers["c"].match_index
    cluster.restore("c", RestoredState.bootstrap(set(ABC)))  # restarted with founder args
    for _ in range(3):
        cluster.heartbeat("a")
    assert before == cluster.node("a").last_index
    assert cluster.node("c").last_index == cluster.node("a").last_index
    assert cluster.applied_payloads("c") == cluster.applied_payloads("a")
    assert cluster.node("a").status().peers["c"].match_index == cluster.node("a").last_index


def test_an_acknowledgement_from_before_the_wipe_does_not_count_after_it_was_noticed() -> None:
    cluster = Cluster(ABC)
    cluster.elect("a")
    cluster.commit("a", [b"x-%d" % i for i in range(3)])
    cluster.timeout("a")  # a heartbeat whose acknowledgement is delayed past c's wipe
    cluster.deliver(to="c")
    (old_ack,) = cluster.drop(src="c", to="a")
    cluster.restore("c", RestoredState.joining())
    cluster.isolate("b")
    cluster.timeout("a")
    cluster.deliver(to="c")
    cluster.deliver(src="c", to="a", limit=1)  # c's rejection: the leader forgets c's log
    assert cluster.node("a").status().peers["c"].match_index == 0
    cluster.drop(to="c")
    cluster.inject(old_ack)
    assert cluster.node("a").status().peers["c"].match_index == 0, "a stale ack counted again"


def test_wiped_founder_restarted_to_join_learns_it_is_a_voter_and_can_lead() -> None:
    """A bootstrapped cluster's configuration lives in each founder's initial snapshot; the
    first leader restates it in the log, so a founder restarted to join on a wiped disk
    learns it is a voter. Here it then holds the only up-to-date log and must campaign."""
    cluster = Cluster(ABC)
    cluster.elect("b")
    cluster.commit("b", [b"x"])
    cluster.restore("a", RestoredState.joining())
    for _ in range(3):
        cluster.heartbeat("b")
    assert "a" in cluster.node("a").config.voters
    cluster.isolate("c")
    cluster.commit("b", [b"only-a-and-b"])
    cluster.crash("b")
    cluster.heal()
    cluster.expire_followers(besides="a")
    _campaign(cluster, "a")
    assert cluster.leader() == "a", "the up-to-date wiped founder never stood for election"
    cluster.heartbeat("a")
    assert b"only-a-and-b" in cluster.applied_payloads("c")
