"""Prometheus metrics of running nodes (the ``replobj[prometheus]`` extra).

``await serve_metrics([node], "127.0.0.1:9464")`` (in the nodes' task group, e.g.
``tasks.start_soon(serve_metrics, [node], "127.0.0.1:9464")``) answers ``GET /metrics``
in Prometheus' text format on the address given: nothing listens anywhere else.
It runs on the nodes' own event loop, so it reads their state between two of their
steps; :class:`NodeCollector` is the same data for a registry of your own (collect it
on the nodes' event-loop thread: ``prometheus_client.start_http_server`` would read
them from another thread).

Every family has a ``node`` label; see :class:`~replobj.metrics.NodeMetrics` for what
each number means. Counters start at zero when a node starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from . import errors
from .node_checks import split_address

try:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import Collector, CollectorRegistry
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "replobj.prometheus needs prometheus_client: pip install 'replobj[prometheus]' "
        "(from a checkout: pip install -e '.[prometheus]'), or pip install prometheus_client"
    ) from exc

if TYPE_CHECKING:
    from .node import Node

__all__ = ["NodeCollector", "serve_metrics"]

_MAX_REQUEST = 8192
"""Bytes of a request's head read at most; a longer one is refused."""


class NodeCollector(Collector):
    """A ``prometheus_client`` collector of the given nodes' :meth:`~replobj.Node.metrics`.

    A node that is not running reports only ``replobj_up 0``.
    """

    def __init__(self, nodes: Iterable[Node]) -> None:
        self._nodes = list(nodes)

    def collect(self) -> Iterator[Metric]:
        """The metric families, one sample per node."""
        up = GaugeMetricFamily("replobj_up", "1 while the node runs", labels=["node"])
        gauges = {
            name: GaugeMetricFamily(f"replobj_{name}", text, labels=["node"])
            for name, text in _GAUGES.items()
        }
        counters = {
            name: CounterMetricFamily(f"replobj_{name}", text, labels=["node"])
            for name, text in _COUNTERS.items()
        }
        latency = HistogramMetricFamily(
            "replobj_command_latency_seconds",
            "Seconds from a command call to its outcome on this node",
            labels=["node"],
        )
        lag = GaugeMetricFamily(
            "replobj_peer_lag_entries",
            "Entries a follower is behind (on the leader)",
            labels=["node", "peer"],
        )
        for node in self._nodes:
            try:
                m = node.metrics()
            except errors.NodeStoppedError:
                up.add_metric([node.id], 0)
                continue
            up.add_metric([node.id], 1)
            values = {
                "term": m.term,
                "is_leader": int(m.role == "leader"),
                "commit_index": m.commit_index,
                "applied_index": m.applied_index,
                "apply_lag_entries": m.apply_lag,
                "calls_in_flight": m.calls_in_flight,
                "calls_waiting_for_room": m.calls_waiting,
                "snapshot_bytes": m.snapshot_bytes,
                "snapshot_seconds": m.snapshot_seconds,
            }
            for name, value in values.items():
                gauges[name].add_metric([m.node_id], value)
            totals = {
                "elections": m.elections,
                "leader_changes": m.leader_changes,
                "snapshots_taken": m.snapshots_taken,
                "snapshots_installed": m.snapshots_installed,
                "messages_sent": m.messages_sent,
                "messages_received": m.messages_received,
                "messages_dropped": m.messages_dropped,
                "messages_rejected": m.messages_rejected,
            }
            for name, value in totals.items():
                counters[name].add_metric([m.node_id], value)
            buckets = [(_bound(bound), count) for bound, count in m.command_latency]
            latency.add_metric([m.node_id], buckets, sum_value=m.command_seconds)
            for peer, entries in sorted(m.peer_lag.items()):
                lag.add_metric([m.node_id, peer], entries)
        yield up
        yield from gauges.values()
        yield from counters.values()
        yield latency
        yield lag


_GAUGES = {
    "term": "The node's current Raft term",
    "is_leader": "1 on the leader",
    "commit_index": "Highest log index known committed",
    "applied_index": "Highest log index applied",
    "apply_lag_entries": "Committed entries not applied yet",
    "calls_in_flight": "Commands the node's callers wait for",
    "calls_waiting_for_room": "Callers waiting under max_pending_calls",
    "snapshot_bytes": "Size of the last snapshot taken",
    "snapshot_seconds": "Seconds the last snapshot took",
}
_COUNTERS = {
    "elections": "Times the node became a candidate",
    "leader_changes": "Times the known leader changed",
    "snapshots_taken": "Snapshots taken of the node's state",
    "snapshots_installed": "Snapshots installed from a leader",
    "messages_sent": "Messages sent",
    "messages_received": "Messages received",
    "messages_dropped": "Outgoing messages dropped",
    "messages_rejected": "Incoming frames or messages refused",
}


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


async def serve_metrics(
    nodes: Sequence[Node],
    listen: str,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Answer ``GET /metrics`` on ``listen`` (``"host:port"``) with the nodes' metrics
    until cancelled; ``task_status`` gets the port once it listens.

    :raises ~replobj.errors.ConfigurationError: if ``listen`` is not ``host:port``.
    :raises OSError: if the address cannot be bound.
    """
    split = split_address(listen)
    if isinstance(split, str):
        raise errors.ConfigurationError(f"serve_metrics(listen=...): {split}")
    host, port = split
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(nodes))
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    bound = listener.extra(anyio.abc.SocketAttribute.local_port)
    task_status.started(bound)

    async def answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            with anyio.move_on_after(10):
                head = await _read_head(stream)
                if head is None:
                    await stream.send(_response(400, b"bad request\n", "text/plain"))
                    return
                method, _, rest = head.partition(b" ")
                path = rest.partition(b" ")[0].partition(b"?")[0]
                if method != b"GET" or path != b"/metrics":
                    await stream.send(_response(404, b"only GET /metrics here\n", "text/plain"))
                    return
                await stream.send(_response(200, generate_latest(registry), CONTENT_TYPE_LATEST))

    async with listener:
        await listener.serve(answer)


async def _read_head(stream: anyio.abc.SocketStream) -> bytes | None:
    """The request line, once the whole head arrived; ``None`` if it is too long or cut."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            data += await stream.receive(4096)
        except anyio.EndOfStream:
            return None
        if len(data) > _MAX_REQUEST:
            return None
    return data.partition(b"\r\n")[0]


def _response(status: int, body: bytes, content_type: str) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body
