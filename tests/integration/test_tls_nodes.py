"""TLS between members, configured on ``Node`` (``tls_server=``/``tls_client=``).

Certificates come from ``trustme`` (a throwaway CA per test). Members still prove the
secret inside TLS; the certificates add encryption and a second, independent check: a
member holding the secret but a certificate from another CA is kept out.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import anyio
import pytest
import trustme
from cluster_helpers import SECRET, Register, free_port

import replobj
from replobj import errors
from replobj.transport.tcp import TcpTransport


def contexts(ca: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Server and client contexts for a member with a certificate from ``ca``, trusting
    only ``ca`` and requiring a certificate from the other side too (mutual TLS)."""
    cert = ca.issue_cert("127.0.0.1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    for context in (server, client):
        cert.configure_cert(context)
        ca.configure_trust(context)
    return server, client


def tls_node(
    node_id: str, listen: str, peers: dict[str, str] | None, ca: trustme.CA, root: Path
) -> tuple[replobj.Node, object]:
    """A member using TLS with a certificate from ``ca``; returns it and its register."""
    server, client = contexts(ca)
    node = replobj.Node(
        node_id,
        secret=SECRET,
        listen=listen,
        peers=peers,
        join=peers is None,
        data_dir=root / node_id,
        election_timeout=0.4,
        heartbeat_interval=0.05,
        tls_server=server,
        tls_client=client,
    )
    return node, node.attach("reg", Register())


async def test_a_tls_cluster_serves_and_keeps_out_a_foreign_certificate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="replobj")
    ca = trustme.CA()
    addresses = {f"n{i}": f"127.0.0.1:{free_port()}" for i in range(3)}
    rogue_address = f"127.0.0.1:{free_port()}"
    print(f"addresses {addresses}, rogue {rogue_address}, data under {tmp_path}")
    built = {n: tls_node(n, a, addresses, ca, tmp_path) for n, a in addresses.items()}
    rogue, _ = tls_node("rogue", rogue_address, None, trustme.CA(), tmp_path)
    async with anyio.create_task_group() as tasks:
        for node, _ in built.values():
            await tasks.start(node.serve)
        leader_id = await built["n0"][0].wait_for_leader(10)
        leader = built[leader_id][0]
        for node_id, (_, register) in built.items():
            assert await register.add(node_id) > 0  # type: ignore[attr-defined]

        await tasks.start(rogue.serve)
        with pytest.raises(errors.CallTimeoutError):
            await leader.add_member("rogue", rogue_address, timeout=3)
        assert "rogue" not in leader.status().voters
        assert rogue.status().applied_index == 0  # it never received the log
        for node_id, (_, register) in built.items():
            assert await register.add(f"{node_id}-after") > 0  # type: ignore[attr-defined]
        refused = [r.getMessage() for r in caplog.records if "rogue" in r.getMessage()]
        print("\n".join(refused))
        assert any("CERTIFICATE_VERIFY_FAILED" in message for message in refused)

        await rogue.aclose()
        for node, _ in built.values():
            await node.aclose()


def test_tls_from_a_blocking_node(tmp_path: Path) -> None:
    ca = trustme.CA()
    address = f"127.0.0.1:{free_port()}"
    server, client = contexts(ca)
    node = replobj.BlockingNode(
        "solo",
        secret=SECRET,
        listen=address,
        data_dir=tmp_path / "solo",
        election_timeout=0.3,
        heartbeat_interval=0.05,
        tls_server=server,
        tls_client=client,
    )
    register = node.attach("reg", Register())
    with node:
        node.wait_for_leader(10)
        assert register.add("x") == 1
        transport = node.node.transport
        assert isinstance(transport, TcpTransport)
        assert (transport._server_ssl, transport._client_ssl) == (server, client)
