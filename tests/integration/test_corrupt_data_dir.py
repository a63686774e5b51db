"""A Node started on a damaged RocksDB data directory refuses to start, loudly.

A real one-member node (a child process) writes commands, then either closes cleanly
(everything is in SST files) or is SIGKILLed (everything is in the write-ahead log). A copy
of its directory gets bytes flipped in the log's SST or in the middle of the WAL, with the
store tests' helper, and a Node restarted on it must raise
:class:`~replobj.errors.CorruptStorageError` itself (not inside an exception group) from
every documented way to start one: ``async with node:``, ``await tasks.start(node.serve)``,
``await node.start(tasks)`` and ``BlockingNode.start()``. The message names the damaged file
and the way out (restart that member on an empty directory with ``join=True``). An
undamaged copy restarts with every acknowledged command: the refusal is the damage's doing.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from cluster_helpers import Register
from corrupt_node_child import COMMANDS, NODE_ID, SECRET_ENV, node_options
from rocksdict import Options, Rdict

import replobj
from replobj.errors import CorruptStorageError, NotAStoreError

sys.path.insert(0, str(Path(__file__).parent.parent / "storage"))
from corruption_helpers import flip

CHILD = Path(__file__).with_name("corrupt_node_child.py")
REPO = Path(__file__).parent.parent.parent
SECRET = replobj.new_secret()


def run_child(data_dir: Path, mode: str) -> None:
    """Run the child node on ``data_dir`` until it closed (``close``) or was killed (``kill``)."""
    env = dict(os.environ)
    env[SECRET_ENV] = SECRET
    path = [str(REPO), str(REPO / "backends" / "rocksdb"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(data_dir), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=CHILD.parent,
        env=env,
    )
    with child:
        assert child.stdout is not None
        line = child.stdout.readline()
        if mode == "kill":
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    expected = b"ready\n" if mode == "kill" else b"closed\n"
    assert line == expected, f"the child node failed before writing to {data_dir}: {line!r}"


def log_sst(data_dir: Path, probe: Path) -> Path:
    """The SST file of the log column family (found on a copy: opening rewrites files)."""
    shutil.copytree(data_dir, probe)
    families = {name: Options(raw_mode=True) for name in ("log", "state", "snapshot")}
    db = Rdict(str(probe), Options(raw_mode=True), column_families=families)
    try:
        files = db.live_files()
    finally:
        db.close()
    shutil.rmtree(probe)
    names = [str(f["name"]).lstrip("/") for f in files if len(f["start_key"]) == 8]
    assert len(names) == 1, files
    return data_dir / names[0]


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two directories of the same node history: ``closed`` (SSTs) and ``killed`` (WAL)."""
    base = tmp_path_factory.mktemp("node-templates")
    run_child(base / "closed", "close")
    run_child(base / "killed", "kill")
    wals = [p for p in (base / "killed").glob("*.log") if p.stat().st_size > 0]
    assert wals, f"the killed node left no write-ahead log in {base / 'killed'}"
    return {"closed": base / "closed", "killed": base / "killed", "base": base}


def damaged_copy(templates: dict[str, Path], tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """A copy of a template with bytes flipped in ``kind`` (``wal`` or ``sst-log``);
    returns the directory and the damaged file."""
    data_dir = tmp_path / "data"
    if kind == "wal":
        shutil.copytree(templates["killed"], data_dir)
        damaged = max(data_dir.glob("*.log"), key=lambda p: p.stat().st_size)
        size = damaged.stat().st_size
        what = flip(damaged, random.Random(kind), start=size // 4, end=size // 2)
    else:
        shutil.copytree(templates["closed"], data_dir)
        damaged = log_sst(data_dir, tmp_path / "probe")
        size = damaged.stat().st_size
        what = flip(damaged, random.Random(kind), start=0, end=size // 4)
    print(f"flipped {what} in {data_dir}")
    return data_dir, damaged


def make_node(data_dir: Path) -> tuple[replobj.Node, Register, Any]:
    """A Node on ``data_dir`` as the child ran it; returns it, its replica and the proxy."""
    node = replobj.Node(NODE_ID, **node_options(data_dir, SECRET))
    replica = Register()
    return node, replica, node.attach("reg", replica)


def check_message(error: CorruptStorageError, data_dir: Path, damaged: Path) -> None:
    message = str(error)
    print(f"refused: {message}")
    assert str(data_dir) in message, message
    assert damaged.name in message, message
    assert "join=True" in message, message


async def escaped(start: Callable[[], Awaitable[object]]) -> BaseException | None:
    """What ``await start()`` raised (``None`` if it returned)."""
    try:
        await start()
    except BaseException as error:  # what escapes, exactly as it escapes, is the point
        return error
    return None


async def start_with_async_with(node: replobj.Node) -> BaseException | None:
    async def run() -> None:
        async with node:
            pass

    return await escaped(run)


async def start_with_serve(node: replobj.Node) -> BaseException | None:
    """``await tasks.start(node.serve)``: the error must leave that call (the caller's own
    task group, which wraps whatever its body raises, is not the node's business)."""
    async with anyio.create_task_group() as tasks:
        error = await escaped(lambda: tasks.start(node.serve))
        await node.aclose()
    return error


async def start_with_start(node: replobj.Node) -> BaseException | None:
    async with anyio.create_task_group() as tasks:
        error = await escaped(lambda: node.start(tasks))
        await node.aclose()
    return error


WAYS: dict[str, Callable[[replobj.Node], Awaitable[BaseException | None]]] = {
    "async-with": start_with_async_with,
    "serve": start_with_serve,
    "start": start_with_start,
}


@pytest.mark.parametrize("kind", ["wal", "sst-log"])
@pytest.mark.parametrize("way", list(WAYS))
@pytest.mark.anyio
async def test_a_node_on_a_damaged_directory_raises_corrupt_storage_error_itself(
    templates: dict[str, Path], tmp_path: Path, kind: str, way: str, anyio_backend: str
) -> None:
    data_dir, damaged = damaged_copy(templates, tmp_path, kind)
    node, replica, _ = make_node(data_dir)
    with anyio.fail_after(30):
        error = await WAYS[way](node)
    assert isinstance(error, CorruptStorageError), f"not raised as itself: {error!r}"
    check_message(error, data_dir, damaged)
    assert replica.values == [], "the node applied entries from a damaged store"
    assert node.transport is None, "the node left its transport running"


@pytest.mark.parametrize("kind", ["wal", "sst-log"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_blocking_node_on_a_damaged_directory_raises_corrupt_storage_error_itself(
    templates: dict[str, Path], tmp_path: Path, kind: str, backend: str
) -> None:
    data_dir, damaged = damaged_copy(templates, tmp_path, kind)
    node = replobj.BlockingNode(NODE_ID, backend=backend, **node_options(data_dir, SECRET))
    node.attach("reg", Register())
    with pytest.raises(BaseException) as raised:
        node.start()
    error = raised.value
    assert isinstance(error, CorruptStorageError), f"not raised as itself: {error!r}"
    check_message(error, data_dir, damaged)
    with pytest.raises(replobj.errors.NodeStoppedError):
        node.status()  # start() failed: no thread is left running


@pytest.mark.parametrize("template", ["closed", "killed"])
@pytest.mark.anyio
async def test_an_undamaged_copy_restarts_with_every_command(
    templates: dict[str, Path], tmp_path: Path, template: str, anyio_backend: str
) -> None:
    """The control: the same copy without flipped bytes holds every acknowledged command."""
    data_dir = tmp_path / "data"
    shutil.copytree(templates[template], data_dir)
    node, _, proxy = make_node(data_dir)
    with anyio.fail_after(30):
        async with node:
            values = await proxy.snapshot_values()  # linearizable: after every committed entry
    assert values == [f"v{number}" for number in range(COMMANDS)]


@pytest.mark.parametrize("damage", ["garbled", "renamed"])
@pytest.mark.anyio
async def test_a_damaged_store_marker_is_refused_naming_it_and_the_way_out(
    templates: dict[str, Path], tmp_path: Path, damage: str, anyio_backend: str
) -> None:
    """Bytes flipped in ``REPLOBJ_STORE`` (the marker checked before RocksDB opens anything):
    the store cannot tell a damaged marker from someone else's directory, so it refuses with
    ``NotAStoreError``; the message must still name the marker and the way out."""
    data_dir = tmp_path / "data"
    shutil.copytree(templates["closed"], data_dir)
    marker = data_dir / "REPLOBJ_STORE"
    good = marker.read_bytes()
    if damage == "garbled":  # unreadable
        damaged = good.replace(b"{", b"\xdd", 1)
    else:  # readable, but naming another store
        damaged = good.replace(b"replobj-rocksdb", b"replJbj-rocksdb")
    assert damaged != good
    marker.write_bytes(damaged)
    print(f"marker {good!r} -> {damaged!r} in {data_dir}")
    node, replica, _ = make_node(data_dir)
    with anyio.fail_after(30):
        error = await start_with_async_with(node)
    assert isinstance(error, NotAStoreError), f"not raised as itself: {error!r}"
    message = str(error)
    print(f"refused: {message}")
    assert str(data_dir) in message, message
    assert "REPLOBJ_STORE" in message, message
    assert "join=True" in message, message
    assert replica.values == []
    assert marker.read_bytes() == damaged, "the refused directory was changed"
