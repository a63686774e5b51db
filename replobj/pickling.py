"""Pickles that let other threads run while they are made or read (for snapshots).

A worker thread running ``pickle.dumps`` or ``pickle.loads`` over a large state does
not let the event loop run: the C pickler never releases the GIL, and the interpreter
only hands the GIL over between bytecodes. So :func:`dumps` gives its pickler a
``persistent_id`` written in Python (called for every object it saves: the interpreter
may switch threads there, every 5 ms by default), and every :data:`YIELD_EVERY` objects
it names the object itself as a persistent id: the stream then holds the object
followed by a ``BINPERSID`` opcode, and :func:`loads`, whose ``persistent_load`` gives
the object back, runs Python code that often while it reads, so the loop runs there too.

A stream made here is an ordinary pickle except for those opcodes: ``pickle.loads``
refuses it ("a load persistent id instruction was encountered"), which is why the
snapshot format that holds them has a tag of its own (:mod:`replobj.snapshot_format`).
:func:`loads` reads plain pickles as well. Every ``stop`` flag is checked at those
same points: once set, the call raises :class:`~replobj.errors.SnapshotAbandonedError`
(a node that stops does not wait for a whole state to be pickled).
"""

from __future__ import annotations

import io
import itertools
import pickle
from collections.abc import Callable
from typing import Any, Protocol

from .errors import SnapshotAbandonedError

__all__ = ["YIELD_EVERY", "StopFlag", "dumps", "loads"]


class StopFlag(Protocol):
    """Set by another thread to stop the work (a ``threading.Event``)."""

    def is_set(self) -> bool:
        """Whether the work should stop."""
        ...


YIELD_EVERY = 4096
"""Objects between two persistent ids in a stream made by :func:`dumps` (about 0.5-1 ms
of unpickling on this machine, well under the 5 ms thread switch interval); each costs
one byte in the stream."""

PicklerFactory = Callable[[io.BytesIO], pickle.Pickler]
"""Makes the pickler that writes to a buffer (``pickle.Pickler`` or ``cloudpickle.Pickler``)."""


def _plain_pickler(file: io.BytesIO) -> pickle.Pickler:
    return pickle.Pickler(file, protocol=5)


def dumps(
    obj: Any,
    stop: StopFlag | None = None,
    *,
    prefix: bytes = b"",
    pickler: PicklerFactory = _plain_pickler,
) -> bytes:
    """``obj`` pickled (protocol 5 unless ``pickler`` says otherwise), after ``prefix``.

    :param stop: once set, pickling stops.
    :param prefix: bytes written before the pickle (a format tag), saving a copy.
    :param pickler: makes the pickler; its own ``persistent_id`` is replaced.
    :raises ~replobj.errors.SnapshotAbandonedError: if ``stop`` was set.
    :raises Exception: whatever pickling ``obj`` raises.
    """
    file = io.BytesIO()
    file.write(prefix)
    writer = pickler(file)
    tick = itertools.cycle((False,) * (YIELD_EVERY - 1) + (True,)).__next__

    def persistent_id(saved: Any) -> Any:
        if not tick():
            return None
        if stop is not None and stop.is_set():
            raise SnapshotAbandonedError("pickling stopped: the node stops")
        return saved  # pickled as itself, then BINPERSID: loads() calls persistent_load

    writer.persistent_id = persistent_id  # type: ignore[method-assign]
    writer.dump(obj)
    return file.getvalue()


def loads(data: bytes, stop: StopFlag | None = None, *, offset: int = 0) -> Any:
    """The object pickled in ``data`` from ``offset`` on (by :func:`dumps` or plain pickle).

    :param stop: once set, unpickling stops (checked at each persistent id).
    :param offset: where the pickle starts (after a format tag), saving a copy.
    :raises ~replobj.errors.SnapshotAbandonedError: if ``stop`` was set.
    :raises Exception: whatever unpickling raises (garbage, a class missing here).
    """
    file = io.BytesIO(data)
    file.seek(offset)
    reader = pickle.Unpickler(file)

    def persistent_load(pid: Any) -> Any:
        if stop is not None and stop.is_set():
            raise SnapshotAbandonedError("unpickling stopped: the node stops")
        return pid

    reader.persistent_load = persistent_load  # type: ignore[method-assign]
    return reader.load()
