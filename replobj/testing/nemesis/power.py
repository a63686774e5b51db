"""Power loss for nemesis runs: each member's data directory on its own power-loss mount.

A :class:`PowerRig` mounts a :class:`~replobj.testing.powerloss.PowerLossMount` on every
member's data directory before the member first starts (the real files live in
``<workdir>/disks/<member>``). Cutting a member's power kills its process and its
filesystem daemon together, so everything it wrote but did not fsync is gone when it
restarts: what a machine losing power keeps. The same mounts make a member's disk fail
(every fsync returns EIO) for the ``disk`` fault.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread

from ...demo.process import MemberSpec
from ..powerloss import DiskFaultStats, PowerLossMount, PowerLossStats

__all__ = ["PowerRig"]


@dataclass(slots=True)
class PowerRig:
    """The power-loss mounts of one run's members.

    :param disks: where the members' durable files live (one folder per member).
    """

    disks: Path
    mounts: dict[str, PowerLossMount] = field(default_factory=dict)

    async def before_spawn(self, spec: MemberSpec) -> None:
        """Mount ``spec``'s data directory if it is not mounted (first start, or after a cut)."""
        mount = self.mounts.get(spec.node_id)
        if mount is None:
            mount = PowerLossMount(self.disks / spec.node_id, spec.data_dir)
            self.mounts[spec.node_id] = mount
        if not mount.running:
            await anyio.to_thread.run_sync(mount.start)

    async def cut(self, node: str) -> PowerLossStats:
        """Cut ``node``'s filesystem power (kill its process first); returns what was lost."""
        return await anyio.to_thread.run_sync(self.mounts[node].cut)

    def fail_disk(self, node: str, fsync_errno: int = errno.EIO) -> None:
        """Make every fsync on ``node``'s disk fail with ``fsync_errno`` until :meth:`heal_disk`."""
        self.mounts[node].fail_disk(fsync_errno=fsync_errno)

    def heal_disk(self, node: str) -> DiskFaultStats:
        """Make ``node``'s disk work again; returns what the switch failed so far."""
        mount = self.mounts[node]
        mount.heal_disk()
        return mount.disk_faults()

    def disk_faults(self, node: str) -> DiskFaultStats:
        """What ``node``'s disk-error switch has failed so far."""
        return self.mounts[node].disk_faults()

    async def close(self) -> None:
        """Unmount everything (after the members have stopped): clean stops, dirty pages synced."""
        for mount in self.mounts.values():
            await anyio.to_thread.run_sync(mount.close)
