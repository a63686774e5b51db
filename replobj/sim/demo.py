"""A narrated *simulation* of a five-node cluster, for ``python -m replobj demo``.

No sockets or disks: five Raft cores run on the deterministic simulator, with every
safety check active. The story: an election, commits, a partition that isolates the
leader, a new leader, healing, and a member added and another removed.
"""

from __future__ import annotations

from collections.abc import Callable

from replobj.raft import ProposalId, ProposalStatus, Refusal, Role

from .cluster import SimCluster
from .network import NetworkFaults
from .simnode import SimNode

DEMO_SEED = 2024
"""The demo's seed: the same story on every run."""


class DemoFailure(AssertionError):
    """Something the demo expected did not happen."""


class _Story:
    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.cluster = SimCluster(
            DEMO_SEED,
            ["n1", "n2", "n3", "n4", "n5"],
            faults=NetworkFaults(loss=0.02, min_latency=1, max_latency=6),
            replay=".venv/bin/python -m replobj.sim --demo",
        )

    def say(self, text: str) -> None:
        self.out(f"[t={self.cluster.now:>5} ms] {text}")

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            raise DemoFailure(f"{what}\n{self.cluster.status_table()}")

    def leader(self) -> SimNode:
        leader = self.cluster.wait_for_leader(20 * self.cluster.params.election_ticks)
        self.expect(leader is not None, "no leader was elected")
        assert leader is not None
        return leader

    def commit(self, count: int, *, everywhere: bool = True) -> list[bytes]:
        cluster = self.cluster
        payloads = [f"command-{cluster.stats.proposals + i + 1}".encode() for i in range(count)]
        cluster.stats.proposals += count
        self.expect(not isinstance(cluster.propose(payloads), Refusal), "proposal refused")
        last = payloads[-1]

        def applied() -> bool:
            index = cluster.checker.payload_index.get(last)
            leader = cluster.leader()
            if index is None or leader is None:
                return False
            if everywhere:
                return cluster.applied_everywhere(index)
            return leader.machine.applied_index >= index

        deadline = cluster.now + 20 * cluster.params.election_ticks
        self.expect(cluster.run_until_true(applied, deadline, 5), "commands did not commit")
        return payloads

    def run(self) -> None:
        cluster = self.cluster
        self.out("SIMULATION: five in-memory Raft nodes on a simulated network (2% loss).")
        self.out("Time is simulated; every Raft safety property is checked after each event.\n")
        first = self.leader()
        self.say(f"{first.id} won the election for term {first.raft.term}")
        before = self.commit(10)
        self.say(f"10 commands committed and applied on all 5 nodes: {before[0]!r}..")

        cluster.isolate(first.id)
        self.say(f"network partition: leader {first.id} is cut off from the other four")
        stranded = first.raft.propose(b"stranded-write")
        cluster.drive(first)
        self.expect(isinstance(stranded, ProposalId), "the isolated leader refused a write")
        self.say(f"{first.id} still thinks it leads and accepts 'stranded-write' (uncommitted)")
        cluster.run_until(cluster.now + 3 * cluster.params.election_ticks)
        second = self.leader()
        self.expect(second.id != first.id, "the majority did not elect a new leader")
        self.say(f"the majority elected {second.id} for term {second.raft.term}")
        self.expect(first.raft.role is not Role.LEADER, "the old leader did not step down")
        self.say(f"{first.id} heard no quorum for an election timeout and stepped down")
        during = self.commit(5, everywhere=False)
        self.say("5 more commands committed by the majority")

        cluster.heal()
        self.say("partition healed")
        again = self.commit(1)
        self.say(
            f"{first.id} caught up; all nodes hold the same {len(before + during + again)} commands"
        )
        assert isinstance(stranded, ProposalId)
        status = first.raft.proposal_status(stranded)
        self.expect(status is ProposalStatus.REJECTED, "the stranded write was not rejected")
        self.expect(b"stranded-write" not in cluster.checker.payload_index, "stranded committed")
        self.say("'stranded-write' was never committed: its proposal status is REJECTED")

        self.expect(not isinstance(cluster.add_member("n6"), Refusal), "add refused")
        self.say("n6 added as a learner; it will be promoted once caught up")
        self.commit(3)
        self.expect("n6" in self.leader().raft.config.voters, "n6 was not promoted")
        self.say("n6 caught up and was promoted to voter (joint consensus)")
        leaving = next(n for n in ("n2", "n3", "n4") if n != self.leader().id)
        self.expect(
            cluster.run_until_true(
                lambda: not isinstance(cluster.remove_member(leaving), Refusal),
                cluster.now + 10 * cluster.params.election_ticks,
                cluster.params.heartbeat_ticks,
            ),
            "remove refused",
        )
        self.commit(3)
        config = self.leader().raft.config
        self.expect(leaving not in config.members and not config.is_joint, "removal incomplete")
        cluster.retire(leaving)
        self.say(f"{leaving} removed from the cluster and shut down")
        cluster.final_check()
        self.out("\nFinal status:\n" + cluster.status_table())
        leaders = len(cluster.checker.leaders)
        self.out(
            f"\n{cluster.stats.events} events, {leaders} leaders elected, "
            f"{cluster.checker.max_commit} log entries committed, {cluster.checker.checks_run} "
            "safety checks: no violation."
        )


def run_demo(out: Callable[[str], None] = print) -> int:
    """Tell the story; returns 0 when everything held, 1 otherwise (with the reason)."""
    story = _Story(out)
    try:
        story.run()
    except AssertionError as exc:
        out(f"\nDEMO FAILED: {exc}")
        return 1
    return 0
