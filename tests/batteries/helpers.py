"""A real in-process cluster (TCP on loopback, RocksDB directories) with batteries attached."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from integration.cluster_helpers import Cluster, free_port  # tests/ is this package's import root

import replobj
from replobj import errors

Factories = dict[str, Callable[[], object]]
"""Object name -> a fresh instance to attach on each member."""


class BatteryCluster(Cluster):
    """:class:`Cluster` whose members also host one fresh instance per ``factories`` entry;
    ``objects[node_id][name]`` is that member's proxy."""

    def __init__(
        self, tasks: anyio.abc.TaskGroup, root: Path, factories: Factories, **options: Any
    ) -> None:
        self.factories = factories
        self.objects: dict[str, dict[str, Any]] = {}
        super().__init__(tasks, root, **options)

    def make(
        self, node_id: str, *, join: bool = False, data_dir: Path | None = None, **options: Any
    ) -> replobj.Node:
        """The base member plus the batteries (attached before it starts)."""
        node = super().make(node_id, join=join, data_dir=data_dir, **options)
        self.objects[node_id] = {
            name: node.attach(name, factory()) for name, factory in self.factories.items()
        }
        return node

    async def start_all(self, attempts: int = 3) -> str:
        """Start every member and return the elected leader; if a port picked as free was
        taken meanwhile (other test runs share the machine), start over on fresh ports."""
        root = self.root
        for attempt in range(1, attempts + 1):
            try:
                return await super().start_all()
            except errors.TransportError as exc:
                if "cannot listen" not in str(exc) or attempt == attempts:
                    raise
                print(f"attempt {attempt}: {exc}; starting over on fresh ports")
                await self.close()
                self.root = root / f"attempt{attempt + 1}"
                self.addresses = {node_id: f"127.0.0.1:{free_port()}" for node_id in self.addresses}
        raise AssertionError("unreachable")

    def followers(self, leader: str) -> list[str]:
        """The running members other than ``leader``, in id order."""
        return sorted(node_id for node_id in self.nodes if node_id != leader)

    async def level(self, timeout: float = 10.0) -> None:
        """Wait until every running member applied everything the most advanced one did."""

        def levelled() -> bool:
            applied = [node.status().applied_index for node in self.nodes.values()]
            commits = [node.status().commit_index for node in self.nodes.values()]
            return len(set(applied)) == 1 and applied[0] >= max(commits)

        await self.wait_until(levelled, timeout)

    async def same_everywhere(self, name: str, query: str, *args: Any) -> Any:
        """``name.query(*args)`` read locally on every running member after :meth:`level`;
        asserts every member answers the same and returns the answer."""
        await self.level()
        answers = {
            node_id: await getattr(self.objects[node_id][name], query).local(*args)
            for node_id in self.nodes
        }
        assert len({repr(answer) for answer in answers.values()}) == 1, answers
        return next(iter(answers.values()))
