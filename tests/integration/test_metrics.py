"""``node.metrics()`` and the Prometheus endpoint, on real nodes (TCP, RocksDB)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import anyio
import pytest
from cluster_helpers import Cluster, free_port
from prometheus_client.parser import text_string_to_metric_families

import replobj
from replobj import errors
from replobj.prometheus import serve_metrics

pytestmark = pytest.mark.anyio


async def test_metrics_count_calls_elections_snapshots_and_messages(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        node = cluster.nodes[leader]
        for number in range(20):
            await cluster.proxies[leader].add(f"v{number}")
        await cluster.proxies[leader].add.many([f"m{n}" for n in range(5)])
        await node.snapshot()
        m = node.metrics()
        assert isinstance(m, replobj.NodeMetrics)
        assert (m.node_id, m.role) == (leader, "leader")
        assert m.commands >= 25  # and the node's own (its member directory)
        assert m.command_latency[-1] == (float("inf"), m.commands)
        counts = [count for _, count in m.command_latency]
        assert counts == sorted(counts), "cumulative buckets"
        assert 0 < m.command_seconds < m.commands * 10
        assert m.calls_waiting == 0
        assert m.elections >= 1, "the leader became a candidate to lead"
        assert (m.snapshots_taken, m.snapshots_installed) == (1, 0)
        assert m.snapshot_bytes > 0
        assert m.snapshot_seconds > 0
        assert m.messages_sent > 0
        assert m.messages_received > 0
        assert m.messages_rejected == 0
        assert set(m.peer_lag) == set(cluster.nodes) - {leader}
        await cluster.wait_until(lambda: node.metrics().apply_lag == 0)
        # None of the callers' calls is left (the node's own may be, for a moment).
        await cluster.wait_until(lambda: node.metrics().calls_in_flight == 0)
        # A leader change is seen by the others.
        await cluster.stop(leader)
        await cluster.leader()
        await cluster.wait_until(
            lambda: all(n.metrics().leader_changes >= 1 for n in cluster.nodes.values())
        )
        await cluster.close()
    with pytest.raises(errors.NodeStoppedError):
        node.metrics()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def test_the_prometheus_endpoint_parses_with_prometheus_clients_own_parser(
    tmp_path: Path,
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        for number in range(7):
            await cluster.proxies[leader].add(f"v{number}")
        for node in cluster.nodes.values():
            await cluster.wait_until(lambda n=node: n.metrics().apply_lag == 0)  # type: ignore[misc]
        nodes = list(cluster.nodes.values())
        port = await tasks.start(serve_metrics, nodes, f"127.0.0.1:{free_port()}")
        status, text = await anyio.to_thread.run_sync(_get, f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(text)}
        samples = {
            (s.name, s.labels.get("node"), s.labels.get("peer")): s.value
            for f in families.values()
            for s in f.samples
        }
        for node in nodes:
            m = node.metrics()
            assert samples[("replobj_up", node.id, None)] == 1
            assert samples[("replobj_applied_index", node.id, None)] == m.applied_index
            assert samples[("replobj_term", node.id, None)] == m.term
            assert samples[("replobj_is_leader", node.id, None)] == (node.id == leader)
            assert samples[("replobj_messages_sent_total", node.id, None)] > 0
        count = samples[("replobj_command_latency_seconds_count", leader, None)]
        assert count == nodes[nodes.index(cluster.nodes[leader])].metrics().commands >= 7
        assert families["replobj_command_latency_seconds"].type == "histogram"
        assert families["replobj_elections"].type == "counter"
        followers = set(cluster.nodes) - {leader}
        assert {
            peer for (name, _, peer) in samples if name == "replobj_peer_lag_entries"
        } == followers
        status, _ = await anyio.to_thread.run_sync(_get, f"http://127.0.0.1:{port}/other")
        assert status == 404
        # A stopped node is reported down, the others still up.
        stopped = next(iter(followers))
        await cluster.stop(stopped)
        _, text = await anyio.to_thread.run_sync(_get, f"http://127.0.0.1:{port}/metrics")
        up = {
            s.labels["node"]: s.value
            for f in text_string_to_metric_families(text)
            if f.name == "replobj_up"
            for s in f.samples
        }
        assert up == {n.id: (0 if n.id == stopped else 1) for n in nodes}
        await cluster.close()
        tasks.cancel_scope.cancel()


async def test_serve_metrics_refuses_a_bad_address() -> None:
    with pytest.raises(errors.ConfigurationError, match="listen"):
        await serve_metrics([], "localhost")
