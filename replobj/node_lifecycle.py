"""The lifecycle of a :class:`~replobj.node.Node` object: one run at a time, and starting
again in the same process after a close.

A restarted node rebuilds its objects from the stored snapshot and log, but the attached
instances still hold everything applied before the close: applying the log onto them
again would apply entries twice. :class:`Lifecycle` remembers the objects' state at the
first start (their state at attach time) and puts it back before every later start, so
the rebuild begins where the objects began. :func:`open_store` opens the store each run
uses. :func:`leave_task_group` ends a run of ``async with node:`` so that a lone error
arrives as itself, and :data:`RUNNING_NODES` lets :func:`replobj.run` find the nodes to
stop on Ctrl-C.
"""

from __future__ import annotations

import logging
import os
from contextvars import ContextVar
from typing import Protocol

import anyio.abc

from .errors import NodeClosedError, StorageError, UnpicklableStateError, UnusableDataDirError
from .raft.types import NodeId
from .statemachine import StateMachine
from .storage.memory import MemoryStorage
from .storage.protocol import Storage
from .storage.registry import open_storage

__all__ = ["RUNNING_NODES", "Lifecycle", "StoppableNode", "leave_task_group", "open_store"]

logger = logging.getLogger("replobj")


class StoppableNode(Protocol):
    """What :func:`replobj.run` needs of a node to stop it on Ctrl-C."""

    id: NodeId

    async def aclose(self) -> None:
        """Stop the node; a leader first hands leadership to another voter."""


RUNNING_NODES: ContextVar[set[StoppableNode] | None] = ContextVar(
    "replobj_running_nodes", default=None
)
"""The nodes serving under :func:`replobj.run` (``None`` outside it): each node adds
itself once started and removes itself once stopped, so that a Ctrl-C can stop them all
cleanly before the application's tasks are cancelled."""


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


async def leave_task_group(outer: anyio.abc.TaskGroup, exc: BaseException | None) -> bool | None:
    """Leave the task group serving the node; a group of one error becomes that error.

    The ``async with node:`` body runs inside this task group, and anyio wraps whatever
    leaves a task group in an exception group, even a single error. A caller writing
    ``except CallTimeoutError`` must see it: when the group holds just the body's own
    exception, it propagates unchanged (``False``: the ``async with`` re-raises it); when it
    holds just one error of the node's (its storage failed, say), however deeply its own
    task groups nested it, that error is raised. A group of several errors stays a group.
    """
    try:
        if exc is None:
            return await outer.__aexit__(None, None, None)
        return await outer.__aexit__(type(exc), exc, exc.__traceback__)
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        (only,) = group.exceptions
        if only is exc or (exc is not None and _leaf_ids(only) == _leaf_ids(exc)):
            return False  # trio hands back a copy of a group the body raised
        while isinstance(only, BaseExceptionGroup) and len(only.exceptions) == 1:
            (only,) = only.exceptions  # the node's own task groups nest it
        if isinstance(only, BaseExceptionGroup):
            raise
        raise only from only.__cause__


def _leaf_ids(error: BaseException) -> list[int]:
    """The identities of the errors in ``error`` (itself, if it is not a group)."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaf_ids(inner)]
    return [id(error)]
