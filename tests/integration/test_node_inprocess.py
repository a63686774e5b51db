"""Whole nodes in one process: real TCP on loopback, real RocksDB, both anyio backends."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import anyio
import pytest
from cluster_helpers import SECRET, Cluster, start_odd_member

import replobj
from replobj import errors
from replobj.raft.messages import ProposeReply

pytestmark = pytest.mark.anyio


async def test_commands_and_reads_from_every_member(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        await cluster.start_all()
        counts = [await cluster.proxies[f"n{i % 3}"].add(f"v{i}") for i in range(9)]
        assert counts == list(range(1, 10))
        expected = [f"v{i}" for i in range(9)]
        for node_id in cluster.nodes:
            assert await cluster.proxies[node_id].snapshot_values() == expected

        # A loaded machine may add an entry (a new leader's no-op) meanwhile: every member
        # still ends up having applied all that is committed.
        def all_applied_the_commit() -> bool:
            statuses = [node.status() for node in cluster.nodes.values()]
            applied = {s.applied_index for s in statuses}
            return applied == {s.commit_index for s in statuses} and min(applied) >= 10

        await cluster.wait_until(all_applied_the_commit)
        await cluster.close()


async def test_exceptions_raise_identically_and_the_node_keeps_serving(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        await cluster.start_all()
        proxy = cluster.proxies["n1"]
        with pytest.raises(ValueError, match="boom"):
            await proxy.fail("boom")
        with pytest.raises(errors.UnknownMethodError):
            proxy.no_such_method  # noqa: B018
        with pytest.raises(errors.UnpicklableArgumentError):
            await proxy.add(threading.Lock())
        with pytest.raises(errors.NotAQueryError):
            cluster.nodes["n1"].statemachine.run_query("reg", "add", ("x",))
        assert await proxy.add("after") == 1001
        for node_id in cluster.nodes:
            assert await cluster.proxies[node_id].snapshot_values() == ["after"]
        await cluster.close()


async def test_commands_get_a_leader_timestamp(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        await cluster.start_all()
        first = await cluster.proxies["n0"].stamp()
        second = await cluster.proxies["n2"].stamp()
        assert 0 < first <= second
        await cluster.close()


async def test_leader_stop_elects_a_new_leader_and_keeps_every_write(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        old = await cluster.start_all()
        follower = next(n for n in cluster.nodes if n != old)
        for i in range(5):
            await cluster.proxies[follower].add(f"before{i}")
        await cluster.stop(old)
        new = await cluster.leader()
        assert new != old
        for i in range(5):
            await cluster.proxies[new].add(f"after{i}")
        await cluster.start(old)
        expected = [f"before{i}" for i in range(5)] + [f"after{i}" for i in range(5)]
        for node_id in cluster.nodes:
            assert await cluster.proxies[node_id].snapshot_values() == expected
        await cluster.close()


async def test_a_restarted_node_catches_up_from_its_data_dir(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        lagging = next(n for n in cluster.nodes if n != leader)
        await cluster.proxies[leader].add("one")
        await cluster.nodes[lagging].read_barrier()
        served = await cluster.proxies[lagging].snapshot_values.local()
        assert served == ["one"]
        await cluster.stop(lagging)
        for i in range(20):
            await cluster.proxies[leader].add(f"x{i}")
        await cluster.nodes[leader].snapshot()
        await cluster.start(lagging)
        first_read = await cluster.proxies[lagging].snapshot_values.local()
        assert first_read[: len(served)] == served  # local reads never go backwards
        expected = ["one"] + [f"x{i}" for i in range(20)]
        await cluster.wait_until(
            lambda: (
                cluster.nodes[lagging].statemachine.applied_index
                >= cluster.nodes[leader].status().commit_index
            )
        )
        assert await cluster.proxies[lagging].snapshot_values.local() == expected
        await cluster.close()


async def test_members_join_and_leave_while_serving(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        cluster.addresses["n3"] = f"127.0.0.1:{_port()}"
        for node_id in ("n0", "n1", "n2"):
            await cluster.start(node_id)
        leader = await cluster.leader()
        for i in range(5):
            await cluster.proxies[leader].add(f"a{i}")
        await cluster.start("n3", join=True)
        await cluster.nodes["n1"].add_member("n3", cluster.addresses["n3"])
        assert "n3" in cluster.nodes["n1"].status().voters  # add_member's promise, on n1
        await cluster.wait_until(lambda: "n3" in cluster.nodes[leader].status().voters)
        await cluster.nodes["n3"].read_barrier()
        assert set(cluster.nodes["n3"].directory.addresses) == {"n0", "n1", "n2", "n3"}
        await cluster.nodes["n0"].read_barrier()
        assert cluster.nodes["n3"].directory.addresses == cluster.nodes["n0"].directory.addresses
        await cluster.proxies["n3"].add("from-n3")
        await cluster.nodes["n3"].remove_member(leader)
        removed = cluster.nodes[leader]
        await cluster.wait_until(lambda: removed.status().role == "removed")
        assert leader not in removed.status().voters
        assert removed.status().removed
        with pytest.raises(errors.NodeRemovedError):
            await cluster.proxies[leader].add("from a removed node")
        await cluster.stop(leader)
        new_leader = await cluster.leader()
        assert new_leader != leader
        await cluster.proxies[new_leader].add("last")
        expected = [f"a{i}" for i in range(5)] + ["from-n3", "last"]
        for node_id in cluster.nodes:
            assert await cluster.proxies[node_id].snapshot_values() == expected
            assert leader not in cluster.nodes[node_id].status().voters
        await cluster.close()


async def test_without_quorum_calls_time_out_then_recover(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        await cluster.start_all()
        await cluster.proxies["n0"].add("ok")
        await cluster.stop("n1")
        await cluster.stop("n2")
        with pytest.raises(errors.CallTimeoutError) as info:
            await cluster.proxies["n0"].add.call(("lost?",), {}, timeout=1.5)
        assert isinstance(info.value, TimeoutError)
        await cluster.start("n1")
        await cluster.leader()
        await cluster.proxies["n0"].add("back")
        values = await cluster.proxies["n1"].snapshot_values()
        assert values[0] == "ok"
        assert values[-1] == "back"
        assert values.count("lost?") <= 1
        await cluster.close()


def _port() -> int:
    from cluster_helpers import free_port

    return free_port()


async def test_a_different_class_under_the_same_name_is_detected(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        await cluster.start("n0")
        await cluster.start("n1")
        odd, odd_proxy = await start_odd_member(cluster, tasks, "n2")
        assert await cluster.proxies["n0"].add("x") == 1
        await odd.read_barrier()
        with pytest.raises(errors.ClassMismatchError, match="same class"):
            await odd_proxy.add("y")
        with pytest.raises(errors.ClassMismatchError, match="same class"):
            await odd_proxy.snapshot_values.local()
        assert await cluster.proxies["n1"].add("z") == 2
        assert "has diverged" in caplog.text
        await odd.aclose()
        await cluster.close()


async def test_a_removed_follower_learns_it_and_refuses_calls(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        gone = next(n for n in cluster.nodes if n != leader)
        await cluster.proxies[leader].add("before")
        await cluster.nodes[leader].remove_member(gone)
        raft = cluster.nodes[gone].runtime.raft
        await cluster.wait_until(lambda: gone not in raft.config.members and raft.config_committed)
        with pytest.raises(errors.NodeRemovedError, match="removed"):
            await cluster.proxies[gone].add("after")
        await cluster.stop(gone)
        assert await cluster.proxies[leader].add("still") == 2
        await cluster.close()


async def test_attaching_after_start_is_refused_and_the_node_keeps_serving() -> None:
    from cluster_helpers import Register, free_port

    address = f"127.0.0.1:{free_port()}"
    node = replobj.Node(
        "solo", secret=SECRET, listen=address, election_timeout=0.3, heartbeat_interval=0.05
    )
    proxy = node.attach("reg", Register())
    async with node:
        await node.wait_for_leader(10)
        with pytest.raises(errors.AttachAfterStartError, match="before"):
            node.attach("late", Register())
        with pytest.raises(errors.NotReplicatedError):
            replobj.Node("x", secret=SECRET, listen=address).attach("plain", object())
        assert await proxy.add("ok") == 1
        assert node.status().voters == ("solo",)


async def test_on_restart_the_stored_membership_wins_over_peers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        await cluster.start_all()
        await cluster.proxies["n0"].add("kept")
        await cluster.stop("n2")
        cluster.addresses["extra"] = "127.0.0.1:1"
        node = await cluster.start("n2")
        assert "using the stored one" in caplog.text
        assert node.status().voters == ("n0", "n1", "n2")
        assert await cluster.proxies["n2"].snapshot_values() == ["kept"]
        await cluster.close()


async def test_a_timeout_says_did_not_apply_only_when_it_did_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        follower = next(n for n in cluster.nodes if n != leader)
        transport = cluster.nodes[leader].runtime.transport
        send = transport.send

        def drop_propose_replies(to: str, message: object) -> None:
            if not isinstance(message, ProposeReply):
                send(to, message)  # type: ignore[arg-type]

        monkeypatch.setattr(transport, "send", drop_propose_replies)
        # The leader appends the forwarded call but its answer is lost: unknown outcome.
        with pytest.raises(errors.CallTimeoutError) as info:
            await cluster.proxies[follower].add.call(("lost-reply",), {}, timeout=1.0)
        assert info.value.outcome_known is False
        monkeypatch.setattr(transport, "send", send)
        values = await cluster.proxies[leader].snapshot_values()
        assert values.count("lost-reply") == 1  # it did apply, once
        # With no leader at all, nothing can have been appended: the outcome is known.
        for node_id in [n for n in cluster.nodes if n != follower]:
            await cluster.stop(node_id)
        await cluster.wait_until(lambda: cluster.nodes[follower].status().leader is None)
        with pytest.raises(errors.CallTimeoutError) as info:
            await cluster.proxies[follower].add.call(("no-leader",), {}, timeout=2.0)
        assert info.value.outcome_known is True
        await cluster.close()


async def test_a_call_that_expired_before_it_was_sent_is_never_sent() -> None:
    from cluster_helpers import Register, free_port

    node = replobj.Node(
        "solo",
        secret=SECRET,
        listen=f"127.0.0.1:{free_port()}",
        election_timeout=0.3,
        heartbeat_interval=0.05,
    )
    proxy = node.attach("reg", Register())
    async with node:
        await node.wait_for_leader(10)
        cmd, payload = node.new_command("reg", "cluster_helpers.Register", "add", ("ghost",), {})
        ticket = node.runtime.submit(payload, time.monotonic() + 10)
        ticket.fail(TimeoutError("expired"))  # what the expiry sweep does at the deadline
        node.finish_command(cmd.seq)
        assert await proxy.add("after") == 1
        assert await proxy.snapshot_values() == ["after"]
