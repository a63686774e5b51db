"""A snapshot refused for a lasting reason (other code, another cluster) is asked for again
with a growing delay, not every election timeout forever; a good install resets it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pytest

from replobj import errors
from replobj.pickling import StopFlag
from replobj.raft import actions as act
from replobj.raft.types import ClusterConfig, SnapshotMeta
from replobj.runtime_options import RuntimeOptions
from replobj.snapshotting import SnapshotKeeper
from replobj.storage.memory import MemoryStorage
from replobj.transport.memory import MemoryNetwork
from replobj.waiting import IndexWaiters

META = SnapshotMeta(5, 1, ClusterConfig(voters=frozenset({"a", "b"})))


@dataclass
class FakeCore:
    """The parts of the core the keeper uses when it refuses or installs a snapshot."""

    id: str = "b"
    leader: str = "a"
    installed: list[SnapshotMeta] = field(default_factory=list)

    def handle_snapshot_rejected(self, meta: SnapshotMeta) -> None:
        """Unused here: the test never waits for the retry."""

    def handle_snapshot_installed(self, meta: SnapshotMeta) -> None:
        self.installed.append(meta)


class Snapshotter:
    """Refuses every snapshot while ``good`` is false."""

    good = False

    def check_snapshot(self, data: bytes, stop: StopFlag | None = None) -> dict[str, Any]:
        if not self.good:
            raise errors.CorruptSnapshotError("not a snapshot of this code")
        return {}

    def restore_checked(self, checked: object) -> None:
        """Accepts what check_snapshot accepted."""

    def snapshot(self, stop: StopFlag | None = None) -> bytes:
        return b""


async def offer(keeper: SnapshotKeeper) -> None:
    keeper.stage_chunk(act.WriteSnapshotChunk(META, 0, b"snapshot bytes"))
    await keeper.install(act.InstallSnapshot(META, keep_log=False))


def delays(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage().split("again in ")[1].split("s ")[0]
        for r in caplog.records
        if "refused a snapshot" in r.getMessage()
    ]


@pytest.mark.anyio
async def test_refusals_back_off_and_a_good_install_resets_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="replobj")
    core, snapshotter = FakeCore(), Snapshotter()
    keeper = SnapshotKeeper(
        core,  # type: ignore[arg-type]
        MemoryStorage(),
        MemoryNetwork().transport("b"),
        snapshotter,
        RuntimeOptions(election_timeout=1.0),
        IndexWaiters(0),
        lambda: None,
    )
    for _ in range(4):
        await offer(keeper)
    assert delays(caplog) == ["1.0", "2.0", "4.0", "8.0"]
    snapshotter.good = True
    await offer(keeper)
    assert core.installed == [META]
    snapshotter.good = False
    await offer(keeper)
    assert delays(caplog)[-1] == "1.0"
