"""The lifecycle of a :class:`~replobj.node.Node` object: one run at a time, and starting
again in the same process after a close.

A restarted node rebuilds its objects from the stored snapshot and log, but the attached
instances still hold everything applied before the close: applying the log onto them
again would apply entries twice. :class:`Lifecycle` remembers the objects' state at the
first start (their state at attach time) and puts it back before every later start, so
the rebuild begins where the objects began. :func:`open_store` opens the store each run
uses.
"""

from __future__ import annotations

import logging
import os

from .errors import NodeClosedError, StorageError, UnpicklableStateError, UnusableDataDirError
from .raft.types import NodeId
from .statemachine import StateMachine
from .storage.memory import MemoryStorage
from .storage.protocol import Storage
from .storage.registry import open_storage

__all__ = ["Lifecycle", "open_store"]

logger = logging.getLogger("replobj")


class Lifecycle:
    """Whether a node runs, and its objects' attach-time state to rewind to on a restart."""

    __slots__ = ("_node_id", "_pristine", "running")

    def __init__(self, node_id: NodeId) -> None:
        self._node_id = node_id
        self._pristine: bytes | None = None
        self.running = False

    def refuse_if_running(self) -> None:
        """:raises ~replobj.errors.NodeClosedError: if the node is running."""
        if self.running:
            raise NodeClosedError(
                f"node {self._node_id!r} is already running; stop it (aclose, or leave its "
                "`async with` block) before starting it again"
            )

    def begin(self, statemachine: StateMachine) -> bool:
        """Mark the node running and rewind its objects (see :meth:`rewind`); returns
        whether they were rewound.

        :raises ~replobj.errors.NodeClosedError: if it runs already or cannot rewind.
        """
        self.refuse_if_running()
        rewound = self.rewind(statemachine)
        self.running = True
        return rewound

    def rewind(self, statemachine: StateMachine) -> bool:
        """Before a start: remember the state (first start) or go back to it (later ones).

        :raises ~replobj.errors.NodeClosedError: if the objects have applied entries and
            their attach-time state could not be pickled at the first start.
        """
        statemachine.freeze()
        if self._pristine is None:
            try:
                self._pristine = statemachine.snapshot()
            except UnpicklableStateError as exc:
                self._pristine = b""
                logger.warning("%s: it cannot be restarted in place: %s", self._node_id, exc)
        if statemachine.applied_index == 0:
            return False
        if not self._pristine:
            raise NodeClosedError(
                f"node {self._node_id!r} cannot be started again in this process: its "
                "objects' state at attach time could not be pickled; create a new Node "
                "(and attach new objects) instead"
            )
        statemachine.restore(self._pristine)
        return True


def open_store(data_dir: str | os.PathLike[str] | None, storage: Storage | None) -> Storage:
    """The store a run uses: ``storage`` if given, else a new in-memory store without a
    ``data_dir``, else the default durable store in ``data_dir``.

    :raises ~replobj.errors.StorageError: if ``data_dir`` cannot be used; it names the path
        (an ``OSError`` of a store that does not raise ``StorageError`` itself becomes
        :class:`~replobj.errors.UnusableDataDirError`).
    """
    if storage is not None:
        return storage
    if data_dir is None:
        return MemoryStorage()
    try:
        return open_storage(data_dir)
    except StorageError:
        raise
    except OSError as exc:
        raise UnusableDataDirError(
            f"data_dir {os.fspath(data_dir)!r} cannot be used ({exc}); give a directory "
            "this process can create, read and write"
        ) from exc
