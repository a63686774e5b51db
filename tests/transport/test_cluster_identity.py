"""A peer of another cluster is refused on both sides, by TCP and by UDP (issue 13, item 1)."""

from __future__ import annotations

import logging
import socket

import pytest
from transport_helpers import SECRET, free_port, receive_n, resend_until_received, wait_until

from replobj.errors import ClusterMismatchError
from replobj.raft.messages import TimeoutNow
from replobj.transport.tcp import TcpTransport
from replobj.transport.udp import UdpTransport

pytestmark = pytest.mark.anyio

FAST = {"backoff": (0.01, 0.02)}


def _mismatch_records(caplog: pytest.LogCaptureFixture, node: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING
        and r.getMessage().startswith(f"{node}:")
        and "ClusterMismatchError" in r.getMessage()
    ]


async def test_tcp_peers_of_different_clusters_refuse_each_other_once_logged(
    ports: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="replobj.transport")
    pa, pb, _ = ports
    print(f"ports {pa}, {pb}")
    async with (
        TcpTransport("a", ("127.0.0.1", pa), {}, secret=SECRET, cluster_id=lambda: "c-one") as a,
        TcpTransport(
            "b", ("127.0.0.1", pb), {"a": ("127.0.0.1", pa)}, secret=SECRET,
            cluster_id=lambda: "c-two", **FAST,  # type: ignore[arg-type]
        ) as b,
    ):  # fmt: skip
        b.send("a", TimeoutNow(1, "b"))
        await wait_until(lambda: a.stats.rejected >= 3, "three refused attempts")
        assert "ClusterMismatchError" in str(b.stats.last_error)
        assert a.stats.received == 0
    for node, peer in (("a", "b"), ("b", "a")):
        logged = _mismatch_records(caplog, node)
        assert len(logged) == 1, f"{node} logged {logged}"
        for needed in ("'c-one'", "'c-two'", repr(peer)):
            assert needed in logged[0]
        assert "belongs to another cluster" in logged[0]


async def test_tcp_an_unknown_cluster_id_on_either_side_is_accepted(ports: list[int]) -> None:
    pa, pb, _ = ports
    known = {"cluster_id": lambda: "c-one"}
    unknown = {"cluster_id": lambda: ""}
    for a_side, b_side in ((known, unknown), (unknown, known), ({}, known)):
        async with (
            TcpTransport("a", ("127.0.0.1", pa), {}, secret=SECRET, **a_side) as a,  # type: ignore[arg-type]
            TcpTransport(
                "b",
                ("127.0.0.1", pb),
                {"a": ("127.0.0.1", pa)},
                secret=SECRET,
                **b_side,  # type: ignore[arg-type]
            ) as b,
        ):
            assert await resend_until_received(b, "a", a, TimeoutNow(1, "b")) == TimeoutNow(1, "b")


def test_cluster_mismatch_error_names_both_ids() -> None:
    from replobj.transport.identity import check_cluster

    with pytest.raises(ClusterMismatchError, match=r"'x'.*'y'.*another cluster"):
        check_cluster(ours="x", theirs="y", peer="b", node="a")
    check_cluster(ours="", theirs="y", peer="b", node="a")
    check_cluster(ours="x", theirs="", peer="b", node="a")
    check_cluster(ours="x", theirs="x", peer="b", node="a")


async def test_udp_datagrams_of_another_cluster_are_dropped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="replobj.transport")
    pa, pb = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    print(f"UDP ports {pa}, {pb}")
    cluster = {"a": "c-one"}
    async with (
        UdpTransport(
            "a", ("127.0.0.1", pa), {}, secret=SECRET, cluster_id=lambda: cluster["a"]
        ) as a,
        UdpTransport(
            "b", ("127.0.0.1", pb), {"a": ("127.0.0.1", pa)}, secret=SECRET,
            cluster_id=lambda: "c-two",
        ) as b,
    ):  # fmt: skip
        for term in range(5):
            b.send("a", TimeoutNow(term, "b"))
        await wait_until(lambda: a.stats.rejected == 5, "five datagrams refused")
        assert a.stats.received == 0
        logged = [r.getMessage() for r in caplog.records if "another cluster" in r.getMessage()]
        assert 1 <= len(logged) < 5, logged
        assert "'c-one'" in logged[0]
        assert "'c-two'" in logged[0]
        cluster["a"] = ""
        b.send("a", TimeoutNow(9, "b"))
        assert await receive_n(a, 1) == [TimeoutNow(9, "b")]
