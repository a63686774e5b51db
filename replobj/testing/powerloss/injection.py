"""Disk errors on demand: a shared control file the parent sets and the daemon obeys.

The control file (:data:`CONTROL`) holds the errno to return for every ``fsync`` /
``fdatasync`` and for every write (``WRITE``, ``FALLOCATE``), ``0`` meaning none, and
two counters the daemon keeps: fsyncs and writes it failed. The parent
(:meth:`~replobj.testing.powerloss.PowerLossMount.fail_disk`) writes the errnos into
the mapped file; the daemon reads them before every request, so a switch takes effect
from the next request on. Each side writes only its own fields.

A failed fsync behaves as Linux after a writeback error (PostgreSQL's "fsyncgate"):
the file's dirty pages are forgotten, so the data is gone even if a later fsync
succeeds (only the kernel's own page cache may still show it to readers for a while).
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from . import protocol as p

__all__ = [
    "CONTROL",
    "DiskFaultStats",
    "DiskFaultSwitch",
    "open_control",
    "read_stats",
    "set_errors",
]

CONTROL = struct.Struct("=iiQQ")
"""Control file layout: fsync errno, write errno, fsyncs failed, writes failed."""

_ERRNOS = struct.Struct("=ii")
_COUNTERS = struct.Struct("=QQ")
_COUNTERS_AT = _ERRNOS.size
_WRITE_OPCODES = frozenset({p.Opcode.WRITE, p.Opcode.FALLOCATE})


@dataclass(frozen=True, slots=True)
class DiskFaultStats:
    """The disk-error switch as it is now and what it has done so far."""

    fsync_errno: int
    """Errno every fsync/fdatasync returns (0: fsyncs work)."""
    write_errno: int
    """Errno every write and fallocate returns (0: writes work)."""
    fsyncs_failed: int
    """Fsyncs answered with an error (each dropped its file's dirty pages)."""
    writes_failed: int
    """Writes and fallocates answered with an error (nothing was written)."""


def open_control(path: Path | str, *, create: bool) -> mmap.mmap:
    """Map the control file at ``path`` (shared between parent and daemon).

    :param path: the file.
    :param create: create it zeroed (no fault) if missing.
    """
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    fd = os.open(path, flags, 0o600)
    try:
        if os.fstat(fd).st_size < CONTROL.size:
            os.ftruncate(fd, CONTROL.size)
        return mmap.mmap(fd, CONTROL.size)
    finally:
        os.close(fd)


def read_stats(control: mmap.mmap) -> DiskFaultStats:
    """The switch's current contents."""
    return DiskFaultStats(*CONTROL.unpack_from(control))


def set_errors(control: mmap.mmap, *, fsync_errno: int, write_errno: int) -> None:
    """Set the errnos (``0``: no error) without touching the daemon's counters."""
    _ERRNOS.pack_into(control, 0, fsync_errno, write_errno)


class DiskFaultSwitch:
    """Daemon side: decides, per request, whether the disk fails it."""

    def __init__(self, control: mmap.mmap | None) -> None:
        """Obey ``control`` (``None``: never inject).

        :param control: the mapped control file.
        """
        self.control = control

    def injected_error(self, opcode: int) -> int:
        """The errno to fail a request with ``opcode`` with, or ``0``; counts the failure.

        :param opcode: the request's FUSE opcode.
        """
        if self.control is None:
            return 0
        fsync_errno, write_errno, fsyncs_failed, writes_failed = CONTROL.unpack_from(self.control)
        if opcode == p.Opcode.FSYNC and fsync_errno:
            _COUNTERS.pack_into(self.control, _COUNTERS_AT, fsyncs_failed + 1, writes_failed)
            return int(fsync_errno)
        if opcode in _WRITE_OPCODES and write_errno:
            _COUNTERS.pack_into(self.control, _COUNTERS_AT, fsyncs_failed, writes_failed + 1)
            return int(write_errno)
        return 0
