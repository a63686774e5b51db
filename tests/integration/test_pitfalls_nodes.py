"""Pitfalls of /work/shared/RAFT-PITFALLS.md that live outside the Raft core.

docs/pitfalls.md maps every pitfall to the tests that catch it, including these.
"""

from __future__ import annotations

import ast
import socket
from pathlib import Path

import anyio
import pytest

import replobj
from replobj.errors import ProtocolError, TransportError
from replobj.raft import RaftOptions
from replobj.raft.messages import TimeoutNow
from replobj.runtime import RuntimeOptions
from replobj.transport import udp
from replobj.transport.codec import encode_frame

SECRET = replobj.new_secret().encode()
PACKAGE = Path(replobj.__file__).parent
UNPICKLERS = frozenset({"pickle", "cloudpickle", "dill", "marshal", "shelve", "_pickle"})


@replobj.replicated
class Table:
    """A flat key-value table."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}

    def put(self, key: str, value: int) -> None:
        """Set ``key`` to ``value``."""
        self.rows[key] = value


def _imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_pitfall_21_udp_datagram_from_another_python_minor_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pitfall 21 (cloudpickle's portability notice): pickled payloads are not portable
    across Python minor versions, so a datagram sealed on another Python is refused before
    its payload is decoded, with a message naming both versions. (TCP peers exchange the
    versions in the handshake: tests/transport/test_tcp_transport.py.)"""
    receiver = udp.UdpTransport("a", ("127.0.0.1", 1), secret=SECRET)
    sender = udp.UdpTransport("b", ("127.0.0.1", 2), secret=SECRET)
    frame = encode_frame(TimeoutNow(1, "b"))
    assert receiver.unseal(sender.seal("a", frame)) == TimeoutNow(1, "b")
    monkeypatch.setattr(udp, "_PYTHON", (3, 99))
    foreign = sender.seal("a", frame)
    monkeypatch.undo()
    with pytest.raises(ProtocolError, match=r"Python 3\.99.*this node speaks"):
        receiver.unseal(foreign)


@pytest.mark.parametrize("package", ["transport", "raft"])
def test_pitfall_25_transport_and_core_never_import_an_unpickler(package: str) -> None:
    """Pitfall 25 (PySyncObj without a password): unpickling what arrives from the network
    is remote code execution. Frames are decoded by msgspec after authentication; no module
    of the transport or the Raft core may even import pickle (checked on the source)."""
    modules = sorted((PACKAGE / package).glob("*.py"))
    assert len(modules) >= 5, modules
    offenders = {
        path.name: found for path in modules if (found := _imported_modules(path) & UNPICKLERS)
    }
    assert not offenders, offenders
    assert _imported_modules(PACKAGE / "pickling.py") & UNPICKLERS, "the checker can fail"


def test_pitfall_8_default_timing_leaves_room_for_loop_stalls() -> None:
    """Pitfall 8: a busy loop or GC pause delays heartbeats; by default the election
    timeout spans ten heartbeat intervals and a full second, and pre-vote plus check-quorum
    are on, so one late heartbeat never starts an election."""
    runtime = RuntimeOptions()
    raft = RaftOptions()
    assert runtime.election_timeout >= 1.0
    assert runtime.election_ticks >= 10
    assert runtime.election_timeout >= 10 * runtime.heartbeat_interval
    assert raft.pre_vote
    assert raft.check_quorum


@pytest.mark.anyio
async def test_pitfall_27_a_node_whose_port_is_taken_fails_at_once_naming_it(
    tmp_path: Path, anyio_backend: str
) -> None:
    """Pitfall 27 (Patroni on PySyncObj: a failed bind spun at 100% CPU, silently): starting
    a node on a port another socket holds raises at once, naming the address."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        address = f"127.0.0.1:{holder.getsockname()[1]}"
        print(f"occupied address {address}, data under {tmp_path}, backend {anyio_backend}")
        node = replobj.Node(
            "n0", secret=SECRET, listen=address, peers={"n0": address}, data_dir=tmp_path / "n0"
        )
        node.attach("table", Table())
        with anyio.fail_after(5), pytest.raises(ExceptionGroup) as raised:
            async with anyio.create_task_group() as tasks:
                await tasks.start(node.serve)
        assert raised.group_contains(TransportError, match=address)
