"""Checks of what a caller gives a :class:`~replobj.node.Node`: ids, addresses, settings.

Every value that ends up in the replicated log or on the wire is checked here, in the
caller, before anything is proposed or started: a bad value found later would live in
the log and crash every member that applies it, on every restart. Each check raises an
error naming the parameter, the bad value and what is accepted.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import math
import os
import re
import ssl
from collections.abc import Mapping
from typing import Any, Final

from .errors import ConfigurationError, InvalidMemberError
from .raft.types import MAX_NODE_ID_BYTES, NodeId
from .storage.protocol import Storage
from .transport.identity import MAX_CLUSTER_ID_BYTES

Address = tuple[str, int]
"""``(host, port)``, as the transports take it."""

__all__ = [
    "address_problem",
    "check_address",
    "check_backend",
    "check_bool",
    "check_member",
    "check_node_id",
    "check_node_parameters",
    "check_peers",
    "check_positive_int",
    "check_positive_number",
    "member_problem",
    "node_id_problem",
    "split_address",
]

_LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_ACCEPTED_ADDRESS: Final = (
    "expected 'host:port' with host an IP address ('10.0.0.5', '[::1]') or a DNS name "
    "('node-a.example') and port 1-65535"
)
_ACCEPTED_ID: Final = f"a non-empty str of at most {MAX_NODE_ID_BYTES} UTF-8 bytes"


def node_id_problem(node_id: object) -> str | None:
    """Why ``node_id`` cannot name a member, or ``None`` if it can."""
    if not isinstance(node_id, str):
        return f"got {type(node_id).__name__} {node_id!r}; expected {_ACCEPTED_ID}"
    size = len(node_id.encode("utf-8", "surrogatepass"))
    if not node_id or size > MAX_NODE_ID_BYTES:
        shown = node_id if len(node_id) <= 40 else node_id[:40] + "..."
        return f"got {shown!r} ({size} bytes); expected {_ACCEPTED_ID}"
    return None


def split_address(address: object) -> Address | str:
    """``"host:port"`` → ``(host, port)``, or the reason it is not a usable address.

    IPv6 hosts are written in brackets (``"[::1]:7001"``) and returned without them.
    """
    if not isinstance(address, str):
        return f"got {type(address).__name__} {address!r}; {_ACCEPTED_ADDRESS}"
    host, sep, port = address.rpartition(":")
    problem = _port_problem(port) if sep else "no ':port'"
    if problem is None:
        host, problem = _host_problem(host)
    if problem is not None:
        return f"got {address!r} ({problem}); {_ACCEPTED_ADDRESS}"
    return host, int(port)


def address_problem(address: object) -> str | None:
    """Why ``address`` is not a usable ``"host:port"``, or ``None`` if it is."""
    split = split_address(address)
    return split if isinstance(split, str) else None


def _port_problem(port: str) -> str | None:
    if not port.isascii() or not port.isdigit():
        return f"port {port!r} is not a number"
    if not 1 <= int(port) <= 65535:
        return f"port {int(port)} is out of range"
    return None


def _host_problem(host: str) -> tuple[str, str | None]:
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return host, f"{host} is not an IPv6 address"
        return host[1:-1], None
    if not host:
        return host, "no host"
    if ":" in host:
        return host, "an IPv6 host must be written in brackets, e.g. '[::1]:7001'"
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        pass
    else:
        return host, None
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return host, f"host {host!r} is neither an IP address nor a DNS name"
    if labels[-1].isdigit():
        return host, f"host {host!r} looks like an IPv4 address but is not a complete one"
    return host, None


def member_problem(node_id: object, address: object = None) -> str | None:
    """Why ``node_id`` (and ``address``, unless ``None``) cannot describe a member, or
    ``None`` if they can; the reason names the bad value and what is accepted."""
    problem = node_id_problem(node_id)
    if problem is not None:
        return f"node_id: {problem}"
    problem = None if address is None else address_problem(address)
    return None if problem is None else f"address of {node_id!r}: {problem}"


def check_member(node_id: object, address: object = None) -> None:
    """Refuse a member id (and address) before it is proposed: once in the log, a bad
    value would reach every member.

    :raises ~replobj.errors.InvalidMemberError: naming the bad value.
    """
    problem = member_problem(node_id, address)
    if problem is not None:
        raise InvalidMemberError(f"{problem}; nothing was proposed")


def check_node_id(node_id: object, *, parameter: str) -> NodeId:
    """Return ``node_id`` if it can name a member.

    :raises ~replobj.errors.ConfigurationError: naming ``parameter`` if it cannot.
    """
    problem = node_id_problem(node_id)
    if problem is not None:
        raise ConfigurationError(f"{parameter}: {problem}")
    assert isinstance(node_id, str)
    return node_id


def check_address(address: object, *, parameter: str) -> Address:
    """Return ``(host, port)`` of a usable ``"host:port"``.

    :raises ~replobj.errors.ConfigurationError: naming ``parameter`` if it is not usable.
    """
    split = split_address(address)
    if isinstance(split, str):
        raise ConfigurationError(f"{parameter}: {split}")
    return split


def check_peers(peers: object, *, node_id: NodeId, listen: str, join: bool) -> dict[NodeId, str]:
    """Return ``peers`` as a dict (``{node_id: listen}`` when empty and not joining).

    :raises ~replobj.errors.ConfigurationError: naming ``peers`` if it is not a mapping
        of valid ids to valid addresses, or (unless ``join``) lacks this node.
    """
    if peers is None:
        peers = {}
    if not isinstance(peers, Mapping):
        raise ConfigurationError(
            f"peers: got {type(peers).__name__}; expected a mapping of member id to "
            "'host:port', e.g. {'a': '10.0.0.1:7001', 'b': '10.0.0.2:7001'}"
        )
    checked: dict[NodeId, str] = {}
    for member, address in peers.items():
        check_node_id(member, parameter="peers (a member id)")
        check_address(address, parameter=f"peers[{member!r}]")
        checked[member] = address
    if not checked and not join:
        return {node_id: listen}
    if not join and node_id not in checked:
        raise ConfigurationError(
            f"peers: {sorted(checked)} does not include this node {node_id!r}; list every "
            "founding member, this one included (or pass join=True to join a running cluster)"
        )
    return checked


def check_positive_number(value: object, *, parameter: str) -> float:
    """Return ``value`` if it is a finite real number above zero (seconds, usually).

    :raises ~replobj.errors.ConfigurationError: naming ``parameter`` otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            f"{parameter}: got {type(value).__name__} {value!r}; expected a positive number"
        )
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{parameter}: got {value!r}; expected a positive number")
    return float(value)


def check_positive_int(value: object, *, parameter: str) -> int:
    """Return ``value`` if it is an ``int`` above zero.

    :raises ~replobj.errors.ConfigurationError: naming ``parameter`` otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(
            f"{parameter}: got {type(value).__name__} {value!r}; expected a positive int"
        )
    return value


def check_bool(value: object, *, parameter: str) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (a truthy ``"no"`` is a mistake).

    :raises ~replobj.errors.ConfigurationError: naming ``parameter`` otherwise.
    """
    if not isinstance(value, bool):
        raise ConfigurationError(
            f"{parameter}: got {type(value).__name__} {value!r}; expected True or False"
        )
    return value


def check_data_dir(data_dir: object) -> None:
    """Refuse a ``data_dir`` that is neither a path nor ``None``, or is the empty string
    (which would put the store in the current directory).

    :raises ~replobj.errors.ConfigurationError: naming ``data_dir``.
    """
    expected = "expected a path (str or pathlib.Path) or None to keep everything in memory"
    if data_dir is not None and not isinstance(data_dir, str | os.PathLike):
        raise ConfigurationError(
            f"data_dir: got {type(data_dir).__name__} {data_dir!r}; {expected}"
        )
    if data_dir == "":
        raise ConfigurationError(
            f"data_dir: got {data_dir!r} (the current directory); {expected}; write '.' "
            "to mean the current directory"
        )


def check_storage(storage: object, *, data_dir: str | os.PathLike[str] | None) -> None:
    """Refuse a ``storage`` that is not a :class:`~replobj.storage.Storage`, or one given
    together with ``data_dir``.

    :raises ~replobj.errors.ConfigurationError: naming ``storage``.
    """
    if storage is None:
        return
    if not isinstance(storage, Storage):
        raise ConfigurationError(
            f"storage: got {type(storage).__name__} {storage!r}; expected a ready store "
            "implementing replobj.storage.Storage (e.g. replobj.storage.MemoryStorage()) or "
            "None; to keep the data in a directory pass data_dir= instead"
        )
    if data_dir is not None:
        raise ConfigurationError(
            "storage: pass either storage= (a ready store) or data_dir= (a RocksDB "
            f"directory), not both (got data_dir={os.fspath(data_dir)!r})"
        )


def check_wrap_transport(wrap_transport: object) -> None:
    """Refuse a ``wrap_transport`` that is neither callable nor ``None``.

    :raises ~replobj.errors.ConfigurationError: naming ``wrap_transport``.
    """
    if wrap_transport is not None and not callable(wrap_transport):
        raise ConfigurationError(
            f"wrap_transport: got {type(wrap_transport).__name__} {wrap_transport!r}; expected "
            "a callable taking the transport and returning the one to use, or None"
        )


def check_backend(backend: object) -> str:
    """Return ``backend`` if it names an anyio backend this process can run.

    :raises ~replobj.errors.ConfigurationError: naming ``backend`` otherwise.
    """
    if backend not in ("asyncio", "trio"):
        raise ConfigurationError(
            f"backend: got {type(backend).__name__} {backend!r}; expected 'asyncio' or 'trio'"
        )
    if backend == "trio" and importlib.util.find_spec("trio") is None:
        raise ConfigurationError(
            "backend: got 'trio' but trio is not installed; install it (pip install trio) "
            "or pass backend='asyncio'"
        )
    return str(backend)


def check_timing(
    *, election_timeout: object, heartbeat_interval: object, call_timeout: object
) -> None:
    """Refuse timeouts that are not positive numbers, or a heartbeat not below the election
    timeout (followers would start elections between heartbeats).

    :raises ~replobj.errors.ConfigurationError: naming the parameter.
    """
    election = check_positive_number(election_timeout, parameter="election_timeout")
    heartbeat = check_positive_number(heartbeat_interval, parameter="heartbeat_interval")
    check_positive_number(call_timeout, parameter="call_timeout")
    if heartbeat >= election:
        raise ConfigurationError(
            f"heartbeat_interval: {heartbeat!r}s is not below election_timeout "
            f"{election!r}s; make it a fraction of it (e.g. a tenth)"
        )


def check_transport(
    transport: object, *, tls_server: object, tls_client: object, seed: object
) -> None:
    """Refuse an unknown transport, TLS contexts that are not ``ssl.SSLContext`` or TLS over
    UDP, and a seed that is not an int.

    :raises ~replobj.errors.ConfigurationError: naming the parameter.
    """
    if transport not in ("tcp", "udp"):
        raise ConfigurationError(f"transport: got {transport!r}; expected 'tcp' or 'udp'")
    for name, context in (("tls_server", tls_server), ("tls_client", tls_client)):
        if context is not None and not isinstance(context, ssl.SSLContext):
            raise ConfigurationError(
                f"{name}: got {type(context).__name__} {context!r}; expected an "
                "ssl.SSLContext (see docs/operations.md, 'TLS between members') or None"
            )
        if context is not None and transport == "udp":
            raise ConfigurationError(
                f"{name}: TLS needs transport='tcp'; transport='udp' has no TLS (its "
                "datagrams are authenticated with the secret only)"
            )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigurationError(f"seed: got {type(seed).__name__} {seed!r}; expected an int")


def check_node_parameters(given: Mapping[str, Any]) -> dict[NodeId, str]:
    """Check the parameters of ``Node(...)`` (``given`` maps their names to their values)
    and return ``peers`` as a dict.

    :raises ~replobj.errors.ConfigurationError: naming the first invalid parameter.
    """
    node_id = check_node_id(given["node_id"], parameter="node_id")
    check_address(given["listen"], parameter="listen")
    join = check_bool(given["join"], parameter="join")
    peers = check_peers(given["peers"], node_id=node_id, listen=given["listen"], join=join)
    data_dir = given["data_dir"]
    check_data_dir(data_dir)
    check_storage(given["storage"], data_dir=data_dir)
    check_wrap_transport(given["wrap_transport"])
    check_timing(
        election_timeout=given["election_timeout"],
        heartbeat_interval=given["heartbeat_interval"],
        call_timeout=given["call_timeout"],
    )
    check_positive_int(given["snapshot_entries"], parameter="snapshot_entries")
    check_positive_int(given["max_pending_calls"], parameter="max_pending_calls")
    watch_history = given["watch_history"]
    if isinstance(watch_history, bool) or not isinstance(watch_history, int) or watch_history < 0:
        raise ConfigurationError(
            f"watch_history: got {type(watch_history).__name__} {watch_history!r}; expected "
            "an int >= 0 (commands kept for watchers to resume from)"
        )
    check_positive_int(given["snapshot_bytes"], parameter="snapshot_bytes")
    check_transport(
        given["transport"],
        tls_server=given["tls_server"],
        tls_client=given["tls_client"],
        seed=given["seed"],
    )
    check_recovery(
        given["cluster_id"], force_new_cluster=given["force_new_cluster"], join=given["join"]
    )
    return peers


def check_recovery(cluster_id: object, *, force_new_cluster: object, join: bool) -> None:
    """Check ``cluster_id`` (a non-empty str the wire can carry) and ``force_new_cluster``
    (which excludes ``join``).

    :raises ~replobj.errors.ConfigurationError: naming the parameter.
    """
    expected = (
        f"expected a non-empty str of at most {MAX_CLUSTER_ID_BYTES} UTF-8 bytes (the id "
        "another member's status() shows) or None"
    )
    if cluster_id is not None and (not isinstance(cluster_id, str) or not cluster_id):
        raise ConfigurationError(
            f"cluster_id: got {type(cluster_id).__name__} {cluster_id!r}; {expected}"
        )
    if cluster_id is not None:
        size = len(cluster_id.encode("utf-8", "surrogatepass"))
        if size > MAX_CLUSTER_ID_BYTES:
            raise ConfigurationError(
                f"cluster_id: got {cluster_id[:40]!r}... ({size} UTF-8 bytes); {expected}"
            )
    check_bool(force_new_cluster, parameter="force_new_cluster")
    if force_new_cluster and join:
        raise ConfigurationError(
            "force_new_cluster: True restarts a member on its own data; join=True starts one "
            "on an empty store: pass only one of them"
        )
