"""``proxy.query.local_now(...)``: the synchronous local read keeps the rules of ``local()``.

It answers at once from this replica, like ``await proxy.query.local(...)``, and refuses
where ``local()`` refuses: a stopped node (``NodeStoppedError``), a diverged replica
(``ClassMismatchError``). Where ``local()`` would wait (the first read after a restart,
until one ReadIndex barrier has caught the node up) it cannot, so it raises
``LocalReadNotReadyError``. Queries run outside the current entry, also when called
from a command handler. ``BlockingNode`` does not offer it (``WrongThreadError``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from cluster_helpers import SECRET, Cluster, Register, count_barriers, free_port, start_odd_member

import replobj
from replobj import errors
from replobj.entry_context import run_in_entry

pytestmark = pytest.mark.anyio

PROBES: dict[str, Callable[[], object]] = {}
"""What :meth:`Notes.probe` calls while it is applied (set by the test that uses it)."""


@replobj.replicated(name="tests.local_now.Notes")
class Notes:
    """Values by key, and queries of several shapes."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}

    def put(self, key: str, value: int) -> int:
        """Store ``value`` under ``key``."""
        self.values[key] = value
        return value

    def probe(self) -> tuple[object, int]:
        """Call the probe while this command applies; then this entry's index (still
        current once the probe returns)."""
        seen = PROBES["probe"]()
        return seen, replobj.current_entry().index

    @replobj.query
    def get(self, key: str, default: int = -1) -> int:
        """The value under ``key``, or ``default``."""
        return self.values.get(key, default)

    @replobj.query
    def total(self, *keys: str, scale: int = 1) -> int:
        """The sum of the values under ``keys`` (all of them if none), times ``scale``."""
        chosen = keys or tuple(self.values)
        return scale * sum(self.values.get(k, 0) for k in chosen)

    @replobj.query
    def entry_seen(self) -> str:
        """What ``current_entry()`` does in this query: ``"none"`` if it raises."""
        try:
            replobj.current_entry()
        except errors.NoCurrentEntryError:
            return "none"
        return "some"


def _node(data_dir: Path, port: int) -> replobj.Node:
    return replobj.Node(
        "n0", secret=SECRET, listen=f"127.0.0.1:{port}", data_dir=data_dir, election_timeout=0.4
    )


async def test_local_now_is_a_plain_call_that_reads_what_local_reads(tmp_path: Path) -> None:
    node = _node(tmp_path / "n0", free_port())
    notes = node.attach("notes", Notes())
    assert not inspect.iscoroutinefunction(notes.get.local_now)
    async with node:
        await node.wait_for_leader()
        for i, key in enumerate("abc"):
            await notes.put(key, i + 1)
        due = node._local_due
        result = notes.get.local_now("b")
        assert not inspect.isawaitable(result)
        assert result == 2 == await notes.get.local("b")
        assert notes.get.local_now("zz") == -1 == await notes.get.local("zz")
        assert notes.get.local_now(key="zz", default=7) == 7
        assert notes.total.local_now() == 6 == await notes.total.local()
        assert notes.total.local_now("a", "c", scale=10) == 40
        assert notes.total.local_now("a", "c", scale=10) == await notes.total.local(
            "a", "c", scale=10
        )
        await notes.put("a", 100)
        assert notes.get.local_now("a") == 100 == await notes.get.local("a")
        with pytest.raises(TypeError, match=r"get\.local_now\(\) missing .* 'key'"):
            notes.get.local_now()
        node._local_due = due
        notes.get.local_now("a")
        assert node._local_due == due  # it took no fairness checkpoint


async def test_local_now_on_a_follower_reads_its_own_replica(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        follower = min(n for n in cluster.nodes if n != leader)
        for value in ("x", "y"):
            await cluster.proxies[leader].add(value)
        await cluster.proxies[follower].snapshot_values()  # a barrier: the follower caught up
        reads = cluster.proxies[follower].snapshot_values
        assert reads.local_now() == ["x", "y"] == await reads.local()
        await cluster.close()


async def test_local_now_refuses_a_node_that_is_not_running(tmp_path: Path) -> None:
    node = _node(tmp_path / "n0", free_port())
    notes = node.attach("notes", Notes())
    with pytest.raises(errors.NodeStoppedError, match="not running"):
        notes.get.local_now("a")
    async with node:
        await node.wait_for_leader()
        await notes.put("a", 1)
        assert notes.get.local_now("a") == 1
    with pytest.raises(errors.NodeStoppedError, match="not running"):
        notes.get.local_now("a")


async def test_after_a_restart_local_now_refuses_until_the_node_caught_up(tmp_path: Path) -> None:
    node = _node(tmp_path / "n0", free_port())
    notes = node.attach("notes", Notes())
    async with anyio.create_task_group() as tasks:
        await tasks.start(node.serve)
        await node.wait_for_leader()
        await notes.put("a", 1)
        await node.aclose()

        barriers = count_barriers(node)
        value = 1
        for catch_up in ("local_read_ready", "local"):
            await tasks.start(node.serve)  # restarted on its data: must catch up first
            for _ in range(2):  # refusing changes nothing: it refuses again
                with pytest.raises(errors.LocalReadNotReadyError) as refused:
                    notes.get.local_now("a")
                message = str(refused.value)
                assert "get.local(...)" in message
                assert "node.local_read_ready()" in message
            assert barriers == []
            if catch_up == "local":
                assert await notes.get.local("a") == value
            else:
                await node.local_read_ready()
            assert len(barriers) == 1
            assert notes.get.local_now("a") == value
            value += 1
            await notes.put("a", value)
            assert notes.get.local_now("a") == value
            assert len(barriers) == 1  # one barrier per restart, none per read
            await node.aclose()
            barriers.clear()


async def test_local_now_refuses_a_diverged_replica(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        await cluster.start("n0")
        await cluster.start("n1")
        odd, odd_proxy = await start_odd_member(cluster, tasks, "n2")
        assert odd_proxy.snapshot_values.local_now() == []
        assert await cluster.proxies["n0"].add("x") == 1
        await odd.read_barrier()
        assert "has diverged" in caplog.text
        with pytest.raises(errors.ClassMismatchError, match="same class"):
            odd_proxy.snapshot_values.local_now()
        with pytest.raises(errors.ClassMismatchError, match="same class"):
            await odd_proxy.snapshot_values.local()
        # Another object's divergence does not stop reads of this one.
        healthy = cluster.nodes["n1"]
        await cluster.proxies["n1"].snapshot_values()
        healthy.diverged["elsewhere"] = errors.ClassMismatchError("diverged on purpose")
        assert cluster.proxies["n1"].snapshot_values.local_now() == ["x"]
        healthy.diverged.clear()
        await odd.aclose()
        await cluster.close()


async def test_local_now_hides_the_current_entry_as_local_does(tmp_path: Path) -> None:
    node = _node(tmp_path / "n0", free_port())
    notes = node.attach("notes", Notes())
    async with node:
        await node.wait_for_leader()
        # Called from a command handler while its entry applies.
        PROBES["probe"] = notes.entry_seen.local_now
        try:
            seen, index = await notes.probe()
        finally:
            PROBES.clear()
        assert seen == "none"
        assert index > 0  # the command's own entry was current again afterwards
        assert notes.entry_seen.local_now() == "none"

        # From a task that inherited an entry in its context, next to local().
        seen_there: list[str] = []

        async def read_inside_an_entry() -> None:
            seen_there.append(notes.entry_seen.local_now())
            seen_there.append(await notes.entry_seen.local())

        async with anyio.create_task_group() as readers:
            run_in_entry((5, 1, 0.0, 0), readers.start_soon, (read_inside_an_entry,), {})
        assert seen_there == ["none", "none"]


def test_blocking_node_refuses_local_now_and_says_what_to_call(tmp_path: Path) -> None:
    node = replobj.BlockingNode(
        "b0", secret=SECRET, listen=f"127.0.0.1:{free_port()}", data_dir=tmp_path / "b0"
    )
    reg = node.attach("reg", Register())
    with node:
        node.wait_for_leader(10)
        assert reg.add("x") == 1
        with pytest.raises(errors.WrongThreadError, match=r"snapshot_values\.local\(\.\.\.\)"):
            reg.snapshot_values.local_now()
        with pytest.raises(errors.NotAQueryError):
            reg.add.local_now("y")
        assert reg.snapshot_values.local() == ["x"]
