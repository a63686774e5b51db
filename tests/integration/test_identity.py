"""Cluster identity on real nodes: data directories are stamped, foreign ones refused.

- the first leader fixes a cluster id through the replicated directory; every member
  learns the same one and stamps its directory with it;
- a directory created for member ``a`` given to member ``b`` is refused at start;
- a directory stamped for cluster X given to a member of cluster Y (same member ids and
  secret) cannot make Y apply X's entries: the handshake refuses links between clusters.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import anyio
import anyio.abc
import pytest
from cluster_helpers import Cluster, Register, free_port

import replobj
from replobj.errors import ForeignDataDirError
from replobj.storage import StoreIdentity, open_storage

NODES = ("a", "b", "c")
SECRET = replobj.new_secret()


def small_cluster(tasks: anyio.abc.TaskGroup, root: Path) -> Cluster:
    """Three nodes on RocksDB directories under ``root``, with the same ids and secret as
    every other cluster of this module."""
    return Cluster(tasks, root, ids=NODES, secret=SECRET, election_timeout=0.3, call_timeout=5.0)


def stamp_of(data_dir: Path) -> StoreIdentity | None:
    """The identity stamped on a stopped node's directory."""
    storage = open_storage(data_dir)
    try:
        return storage.identity()
    finally:
        storage.close()


@pytest.mark.anyio
async def test_every_member_learns_one_cluster_id_and_stamps_its_directory(
    tmp_path: Path, anyio_backend: str
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = small_cluster(tasks, tmp_path)
        await cluster.start_all()
        await cluster.proxies["a"].add("x1")
        await cluster.wait_until(lambda: all(n.cluster_id for n in cluster.nodes.values()))
        ids = {n.cluster_id for n in cluster.nodes.values()}
        assert len(ids) == 1, ids
        (cluster_id,) = ids
        assert all(n.status().cluster_id == cluster_id for n in cluster.nodes.values())
        await cluster.wait_until(lambda: all(n.stamped_cluster_id for n in cluster.nodes.values()))
        await cluster.close()
    for node_id in NODES:
        assert stamp_of(tmp_path / node_id) == StoreIdentity(node_id, cluster_id)


@pytest.mark.anyio
async def test_a_directory_of_member_a_is_refused_to_member_b(
    tmp_path: Path, anyio_backend: str
) -> None:
    address = f"127.0.0.1:{free_port()}"
    data_dir = tmp_path / "dir"
    print(f"node on {address}, data under {data_dir}")
    first = replobj.Node(
        "a", listen=address, peers={"a": address}, data_dir=data_dir, secret=SECRET
    )
    reg = first.attach("reg", Register())
    async with first:
        assert await reg.add("kept") == 1
    other = replobj.Node(
        "b", listen=address, peers={"b": address}, data_dir=data_dir, secret=SECRET
    )
    other.attach("reg", Register())
    with pytest.raises(ForeignDataDirError) as caught:
        async with other:
            pass
    message = str(caught.value)
    assert str(data_dir) in message
    assert "'a'" in message
    assert "'b'" in message
    assert "operations.md" in message
    assert stamp_of(data_dir) is not None
    assert stamp_of(data_dir).member_id == "a"  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_a_store_with_data_but_no_stamp_is_stamped_and_logged(
    tmp_path: Path, anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    address = f"127.0.0.1:{free_port()}"
    data_dir = tmp_path / "old"
    print(f"node on {address}, data under {data_dir}")
    node = replobj.Node("a", listen=address, peers={"a": address}, data_dir=data_dir, secret=SECRET)
    reg = node.attach("reg", Register())
    async with node:
        assert await reg.add("one") == 1
    storage = open_storage(data_dir)
    try:
        storage.set_identity(StoreIdentity("a", ""))  # what an older version left: no cluster
    finally:
        storage.close()
    again = replobj.Node(
        "a", listen=address, peers={"a": address}, data_dir=data_dir, secret=SECRET
    )
    reg = again.attach("reg", Register())
    with caplog.at_level(logging.INFO, logger="replobj"):
        async with again:
            assert await reg.add("two") == 2
            with anyio.fail_after(5):
                while not again.stamped_cluster_id:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
    assert stamp_of(data_dir) == StoreIdentity("a", again.cluster_id)


@pytest.mark.anyio
async def test_a_node_pinned_to_another_cluster_refuses_the_directory(
    tmp_path: Path, anyio_backend: str
) -> None:
    address = f"127.0.0.1:{free_port()}"
    data_dir = tmp_path / "dir"
    print(f"node on {address}, data under {data_dir}")
    node = replobj.Node("a", listen=address, peers={"a": address}, data_dir=data_dir, secret=SECRET)
    node.attach("reg", Register())
    async with node:
        with anyio.fail_after(5):
            while not node.stamped_cluster_id:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        cluster_id = node.cluster_id
    pinned = replobj.Node(
        "a",
        listen=address,
        peers={"a": address},
        data_dir=data_dir,
        cluster_id="f" * 32,
        secret=SECRET,
    )
    pinned.attach("reg", Register())
    with pytest.raises(ForeignDataDirError) as caught:
        async with pinned:
            pass
    assert cluster_id in str(caught.value)
    assert "f" * 32 in str(caught.value)
    same = replobj.Node(
        "a",
        listen=address,
        peers={"a": address},
        data_dir=data_dir,
        cluster_id=cluster_id,
        secret=SECRET,
    )
    same.attach("reg", Register())
    async with same:
        assert same.cluster_id == cluster_id


@pytest.mark.anyio
async def test_another_clusters_directory_never_leaks_its_entries(
    tmp_path: Path, anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with anyio.create_task_group() as tasks:
        x = small_cluster(tasks, tmp_path / "x")
        y = small_cluster(tasks, tmp_path / "y")
        await x.start_all()
        await y.start_all()
        await x.proxies["a"].add("from-x")
        await y.proxies["a"].add("from-y")
        await x.wait_until(lambda: all(n.stamped_cluster_id for n in x.nodes.values()))
        await y.wait_until(lambda: all(n.stamped_cluster_id for n in y.nodes.values()))
        x_id, y_id = x.nodes["a"].cluster_id, y.nodes["a"].cluster_id
        assert x_id != y_id
        for _ in range(3):  # X's log has a later term: it wins any election it stands in
            leader = next(n for n in x.nodes.values() if n.is_leader)
            await leader.transfer_leadership()
            await x.wait_until(lambda: any(n.is_leader for n in x.nodes.values()))
        await x.proxies["b"].add("more-x")
        await x.close()
        await y.close()
        with caplog.at_level(logging.WARNING, logger="replobj"):
            await y.start("a", data_dir=tmp_path / "x" / "a")
            await y.start("b")
            await y.start("c")
            await y.wait_until(
                lambda: any(
                    x_id in r.getMessage() and y_id in r.getMessage() for r in caplog.records
                )
            )
            assert await y.proxies["b"].add("still-y") == 2
            for node_id in ("b", "c"):
                values = y.nodes[node_id].statemachine.objects["reg"].values
                assert "from-x" not in values, (node_id, values)
                assert "more-x" not in values, (node_id, values)
                assert y.nodes[node_id].cluster_id == y_id
        await y.close()


@pytest.mark.anyio
async def test_a_directory_moved_on_purpose_keeps_its_member_with_a_new_address(
    tmp_path: Path, anyio_backend: str
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = small_cluster(tasks, tmp_path)
        await cluster.start_all()
        await cluster.proxies["a"].add("before")
        await cluster.wait_until(lambda: all(n.stamped_cluster_id for n in cluster.nodes.values()))
        await cluster.nodes.pop("c").aclose()
        moved = tmp_path / "new-machine" / "c"
        shutil.copytree(tmp_path / "c", moved)
        shutil.rmtree(tmp_path / "c")
        cluster.addresses["c"] = new_address = f"127.0.0.1:{free_port()}"
        print(f"c moved to {moved}, listening on {new_address}")
        c = await cluster.start("c", data_dir=moved)
        survivor = next(n for n in cluster.nodes.values() if n.id != "c")
        await survivor.add_member("c", new_address)
        await cluster.proxies["b"].add("after")
        await cluster.wait_until(
            lambda: c.statemachine.objects["reg"].values == ["before", "after"]
        )
        assert c.cluster_id == survivor.cluster_id
        await cluster.close()
