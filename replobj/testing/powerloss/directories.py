"""Open directories of the power-loss filesystem: listings served to READDIR."""

from __future__ import annotations

import os
import stat

from . import protocol as p

__all__ = ["OpenDirectory"]


class OpenDirectory:
    """One OPENDIR handle: a real directory descriptor and the listing being read."""

    def __init__(self, fd: int) -> None:
        """Wrap ``fd`` (a readable directory descriptor this object now owns).

        :param fd: the backing directory, opened ``O_RDONLY | O_DIRECTORY``.
        """
        self.fd = fd
        """The backing directory's descriptor."""
        self._entries: list[tuple[bytes, int, int]] = []

    def read(self, nodeid: int, offset: int, size: int) -> bytes:
        """``fuse_dirent`` records from entry ``offset`` on, at most ``size`` bytes.

        Offset 0 (a fresh read or a rewind) takes a new listing of the directory.

        :param nodeid: the directory's node id (reported for ``.``).
        :param offset: index of the first entry to return.
        :param size: the kernel's buffer size.
        """
        if offset == 0:
            listing = [(b".", nodeid, stat.S_IFDIR), (b"..", 0, stat.S_IFDIR)]
            with os.scandir(self.fd) as entries:
                for entry in entries:
                    kind = entry.stat(follow_symlinks=False).st_mode
                    listing.append((os.fsencode(entry.name), entry.inode(), kind))
            self._entries = listing
        records: list[bytes] = []
        used = 0
        for index in range(offset, len(self._entries)):
            name, ino, mode = self._entries[index]
            record = p.dirent(ino, index + 1, name, mode)
            if used + len(record) > size:
                break
            records.append(record)
            used += len(record)
        return b"".join(records)

    def close(self) -> None:
        """Close the directory descriptor."""
        os.close(self.fd)
