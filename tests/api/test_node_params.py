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
        ("seed", "1"),
    ],
)
def test_bad_settings_are_refused_by_name(name: str, value: object) -> None:
    with pytest.raises(errors.ConfigurationError, match=name):
        build(**{name: value})


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


def test_blocking_node_checks_the_same_parameters() -> None:
    with pytest.raises(errors.WeakSecretError):
        replobj.BlockingNode("a", listen=ADDRESS)
    with pytest.raises(errors.ConfigurationError, match="listen"):
        replobj.BlockingNode("a", listen=7001, secret=SECRET)
