"""A FUSE filesystem that loses every write not yet fsynced when its power is cut.

:class:`PowerLossMount` mounts a backing directory through a daemon process speaking
the FUSE kernel protocol directly (no libfuse). Metadata passes through at once;
file data stays in the daemon's memory until ``fsync``/``fdatasync``. :meth:`cut`
SIGKILLs the daemon, so what survives is exactly what was fsynced::

    mount = PowerLossMount(backing, mountpoint)
    mount.start()
    ...  # run a process whose data directory is inside mountpoint
    mount.cut()      # power loss
    mount.start()    # reboot: the files hold what was fsynced
    mount.stop()     # clean shutdown (syncs everything)

``mount.fail_disk(fsync_errno=errno.EIO)`` makes every fsync fail from then on (and
forget the file's dirty pages, as Linux does after a writeback error), and
``fail_disk(fsync_errno=0, write_errno=errno.ENOSPC)`` a full disk, until
``mount.heal_disk()``; :class:`DiskFaultStats` counts what was failed.

Needs root (mount(2)) and ``/dev/fuse``; otherwise :class:`PowerLossMountError` says
what is missing.

Model and limits:

- Metadata (create, mkdir, unlink, rmdir, rename, chmod, chown, utimes) reaches the
  backing directory at once and survives any cut, synced or not; ``fsyncdir`` is a
  no-op. Only file *contents* and sizes (writes, truncates, fallocate) are volatile.
- A file created and never fsynced survives a cut with size 0.
- Not implemented (the kernel reports an error): hard links, symlinks, mknod,
  xattrs, ``RENAME_NOREPLACE``/``RENAME_EXCHANGE`` (EINVAL), fallocate modes other
  than plain and ``KEEP_SIZE`` (EOPNOTSUPP). POSIX and flock locks are handled by the
  kernel inside one mount (enough for RocksDB's LOCK file).
- A crash *during* an fsync may leave that file partly updated (like a real disk).
- The daemon is single-threaded (about 3,500 fsyncs/s); dirty data lives in its memory.
"""

from __future__ import annotations

from .errors import PowerLossMountError
from .injection import DiskFaultStats
from .mount import PowerLossMount, PowerLossStats

__all__ = ["DiskFaultStats", "PowerLossMount", "PowerLossMountError", "PowerLossStats"]
