"""``Node(...)`` checks every parameter when it is built and names the bad one.

Nothing here starts a node: a wrong parameter must fail at construction, not later
inside the runtime (where it used to surface as a hang, a crash or an exception group).
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest

import replobj
from replobj import errors
from replobj.raft.types import MAX_NODE_ID_BYTES

SECRET = replobj.new_secret()
ADDRESS = "127.0.0.1:7001"


def build(**overrides: Any) -> replobj.Node:
    """A Node with valid defaults, ``overrides`` applied."""
    params: dict[str, Any] = {"listen": ADDRESS, "secret": SECRET}
    params.update(overrides)
    node_id = params.pop("node_id", "a")
    return replobj.Node(node_id, **params)


def test_valid_parameters_build_a_node() -> None:
    node = build(peers={"a": ADDRESS, "b": "node-b.example:7002", "c": "[::1]:7003"})
    assert node.id == "a"
    assert node.peers["c"] == "[::1]:7003"


@pytest.mark.parametrize("secret", [None, 123, "short", b"x" * 15, ["a" * 20]])
def test_a_missing_or_weak_secret_is_refused(secret: object) -> None:
    with pytest.raises(errors.WeakSecretError, match="secret") as info:
        build(secret=secret)
    assert "token_urlsafe" in str(info.value)  # says how to make one


@pytest.mark.parametrize("node_id", [123, "", "x" * (MAX_NODE_ID_BYTES + 1), "é" * 128, None, b"a"])
def test_a_bad_node_id_is_refused(node_id: object) -> None:
    with pytest.raises(errors.ConfigurationError, match="node_id"):
        build(node_id=node_id)


def test_the_longest_node_id_is_accepted() -> None:
    assert build(node_id="x" * MAX_NODE_ID_BYTES).id == "x" * MAX_NODE_ID_BYTES


@pytest.mark.parametrize(
    "listen",
    [
        7001,
        "7001",
        "127.0.0.1",
        "127.0.0.1:0",
        "127.0.0.1:99999",
        "127.0.0.1:x",
        ":7001",
        "127.1:7001",
        "bad_host!:7001",
        "::1:7001",
        "[zz]:7001",
        "a..b:7001",
    ],
)
def test_a_bad_listen_address_is_refused(listen: object) -> None:
    with pytest.raises(errors.ConfigurationError, match="listen"):
        build(listen=listen)


@pytest.mark.parametrize(
    ("peers", "named"),
    [
        ({"a": ADDRESS, "b": "127.0.0.1:99999"}, "peers"),
        ({"a": ADDRESS, "": "127.0.0.1:7002"}, "peers"),
        ({"a": ADDRESS, 5: "127.0.0.1:7002"}, "peers"),
        ({"b": "127.0.0.1:7002"}, "peers"),  # does not include this node
        (["a", "b"], "peers"),
    ],
)
def test_bad_peers_are_refused(peers: object, named: str) -> None:
    with pytest.raises(errors.ConfigurationError, match=named):
        build(peers=peers)


def test_a_joining_node_needs_not_list_itself() -> None:
    assert build(peers={"b": "127.0.0.1:7002"}, join=True).join


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("election_timeout", "1"),
        ("election_timeout", 0),
        ("election_timeout", -1.0),
        ("election_timeout", float("nan")),
        ("election_timeout", float("inf")),
        ("election_timeout", True),
        ("heartbeat_interval", 0),
        ("heartbeat_interval", 2.0),  # not below the election timeout
        ("call_timeout", 0),
        ("call_timeout", "10"),
        ("snapshot_entries", 0),
        ("snapshot_entries", 1.5),
        ("snapshot_bytes", -1),
        ("transport", "quic"),
        ("data_dir", 5),
        ("data_dir", ""),
        ("seed", "1"),
        ("join", "no"),
        ("join", 1),
        ("join", None),
        ("storage", 5),
        ("storage", "data/a"),
        ("wrap_transport", 5),
        ("wrap_transport", "faulty"),
        ("tls_server", "cert.pem"),
        ("tls_client", b"cert"),
        ("cluster_id", 5),
        ("cluster_id", ""),
        ("force_new_cluster", "yes"),
        ("force_new_cluster", 1),
    ],
)
def test_bad_settings_are_refused_by_name(name: str, value: object) -> None:
    """The error names the parameter and shows the bad value, so it can be found and fixed."""
    with pytest.raises(errors.ConfigurationError, match=name) as info:
        build(**{name: value})
    message = str(info.value)
    assert message.startswith(f"{name}: "), message
    shown = value if isinstance(value, str | bytes) else repr(value)
    assert repr(value) in message or str(shown) in message, message
    assert "expected" in message or "not below" in message, message


def test_a_cluster_id_longer_than_the_wire_carries_is_refused() -> None:
    from replobj.transport.identity import MAX_CLUSTER_ID_BYTES

    too_long = "c" * (MAX_CLUSTER_ID_BYTES + 1)
    with pytest.raises(errors.ConfigurationError, match="cluster_id") as info:
        build(cluster_id=too_long)
    assert f"{MAX_CLUSTER_ID_BYTES + 1} UTF-8 bytes" in str(info.value)
    assert build(cluster_id="c" * MAX_CLUSTER_ID_BYTES).id == "a"


def test_valid_optional_parameters_are_accepted() -> None:
    """The checks above refuse only what is wrong: each optional parameter's valid forms pass."""
    from replobj.storage.memory import MemoryStorage
    from replobj.transport.base import Transport

    def wrap(transport: Transport) -> Transport:
        return transport

    node = build(
        join=True,
        storage=MemoryStorage(),
        wrap_transport=wrap,
        cluster_id="cluster-1",
        seed=7,
        tls_client=ssl.create_default_context(),
    )
    assert node.join
    assert build(force_new_cluster=True).force_new_cluster


def test_storage_and_data_dir_together_are_refused(tmp_path: Any) -> None:
    from replobj.storage.memory import MemoryStorage

    with pytest.raises(errors.ConfigurationError, match="storage"):
        build(storage=MemoryStorage(), data_dir=tmp_path)


def test_tls_with_udp_is_refused() -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with pytest.raises(errors.ConfigurationError, match="udp"):
        build(transport="udp", tls_server=context)


def test_tls_parameters_must_be_ssl_contexts() -> None:
    with pytest.raises(errors.ConfigurationError, match="tls_client"):
        build(tls_client="cert.pem")


@pytest.mark.parametrize(
    ("name", "value"),
    [("listen", 7001), ("join", "no"), ("storage", 5), ("wrap_transport", 5)],
)
def test_blocking_node_checks_the_same_parameters(name: str, value: object) -> None:
    with pytest.raises(errors.WeakSecretError):
        replobj.BlockingNode("a", listen=ADDRESS)
    params: dict[str, Any] = {"listen": ADDRESS, "secret": SECRET, name: value}
    with pytest.raises(errors.ConfigurationError, match=name):
        replobj.BlockingNode("a", **params)


@pytest.mark.parametrize("backend", ["tokio", "", 5, None])
def test_blocking_node_refuses_an_unknown_backend(backend: object) -> None:
    """A bad ``backend`` fails at construction, naming it, not later in the portal thread."""
    with pytest.raises(errors.ConfigurationError, match="backend") as info:
        replobj.BlockingNode("a", listen=ADDRESS, secret=SECRET, backend=backend)  # type: ignore[arg-type]
    assert "'asyncio' or 'trio'" in str(info.value)
    assert repr(backend) in str(info.value)
