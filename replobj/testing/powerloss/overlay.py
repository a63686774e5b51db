"""Unsynced file contents: dirty pages kept in memory over a backing file until fsync.

A :class:`FileOverlay` is what a disk's volatile cache holds for one file. Reads see
the dirty pages laid over the backing bytes; only :meth:`FileOverlay.sync` writes them
to the backing file (and ``os.fsync``s it). Losing the overlay (the daemon is killed)
is losing power: the file is then exactly what the last sync left.
"""

from __future__ import annotations

import os

__all__ = ["PAGE_SIZE", "FileOverlay"]

PAGE_SIZE = 4096
"""Granularity of dirty tracking."""


class FileOverlay:
    """The logical contents of one backing file: backing bytes plus dirty pages.

    ``size`` is the logical size. ``floor`` is the lowest size the file had since the
    last sync: backing bytes at or past it were truncated away and read as zeros.
    """

    def __init__(self, data_fd: int) -> None:
        """Start with no dirty data over the file open (read-write) at ``data_fd``.

        :param data_fd: a read-write descriptor of the backing file; the overlay owns it.
        """
        self.data_fd = data_fd
        """Read-write descriptor of the backing file (keeps the inode alive while dirty)."""
        self.open_handles = 0
        """How many kernel file handles refer to this file."""
        self.size = os.fstat(data_fd).st_size
        """Logical size: what ``stat`` reports."""
        self.floor = self.size
        self._pages: dict[int, bytearray] = {}
        self._size_dirty = False

    @property
    def dirty(self) -> bool:
        """Whether anything differs from the backing file (would be lost by a power cut)."""
        return bool(self._pages) or self._size_dirty

    @property
    def dirty_bytes(self) -> int:
        """Bytes held only in memory, counted in whole pages."""
        return len(self._pages) * PAGE_SIZE

    def _backing(self, offset: int, length: int) -> bytes:
        """Backing bytes in ``[offset, offset+length)``, zeros past ``floor`` or its end."""
        visible = max(0, min(length, self.floor - offset))
        data = os.pread(self.data_fd, visible, offset) if visible else b""
        return data + bytes(length - len(data))

    def _page(self, number: int) -> bytearray:
        page = self._pages.get(number)
        if page is None:
            page = bytearray(self._backing(number * PAGE_SIZE, PAGE_SIZE))
            self._pages[number] = page
        return page

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` logical bytes from ``offset`` (short at the logical end).

        :param offset: where to start.
        :param length: how many bytes at most.
        """
        end = min(offset + length, self.size)
        if end <= offset:
            return b""
        if not self._pages:
            return self._backing(offset, end - offset)
        parts: list[bytes] = []
        position = offset
        while position < end:
            number, within = divmod(position, PAGE_SIZE)
            take = min(PAGE_SIZE - within, end - position)
            page = self._pages.get(number)
            if page is None:
                parts.append(self._backing(position, take))
            else:
                parts.append(bytes(page[within : within + take]))
            position += take
        return b"".join(parts)

    def write(self, offset: int, data: bytes) -> None:
        """Buffer ``data`` at ``offset``, extending the logical size if needed.

        :param offset: where the bytes go.
        :param data: the bytes.
        """
        position, source = offset, 0
        while source < len(data):
            number, within = divmod(position, PAGE_SIZE)
            take = min(PAGE_SIZE - within, len(data) - source)
            self._page(number)[within : within + take] = data[source : source + take]
            position += take
            source += take
        if position > self.size:
            self.size = position
            self._size_dirty = True

    def truncate(self, size: int) -> None:
        """Set the logical size; bytes past it are gone and read as zeros if re-extended.

        :param size: the new logical size.
        """
        if size < self.size:
            last_page, within = divmod(size, PAGE_SIZE)
            for number in [
                n for n in self._pages if n > last_page or (n == last_page and not within)
            ]:
                del self._pages[number]
            page = self._pages.get(last_page)
            if page is not None:
                page[within:] = bytes(PAGE_SIZE - within)
            self.floor = min(self.floor, size)
        self.size = size
        self._size_dirty = True

    def sync(self) -> int:
        """Write every dirty page and the logical size to the backing file, then fsync it.

        :returns: how many dirty bytes were written (whole pages).
        """
        written = self.dirty_bytes
        if self.dirty:
            backing_size = os.fstat(self.data_fd).st_size
            if self.floor < backing_size:
                os.ftruncate(self.data_fd, self.floor)
            for start, run in self._dirty_runs():
                os.pwrite(self.data_fd, run, start)
            os.ftruncate(self.data_fd, self.size)
            self._pages.clear()
            self._size_dirty = False
            self.floor = self.size
        os.fsync(self.data_fd)
        return written

    def discard(self) -> int:
        """Forget every dirty page: a failed writeback (the file is again what the last sync left).

        :returns: how many dirty bytes were forgotten (whole pages).
        """
        lost = self.dirty_bytes
        self._pages.clear()
        self._size_dirty = False
        self.size = self.floor = os.fstat(self.data_fd).st_size
        return lost

    def _dirty_runs(self) -> list[tuple[int, bytes]]:
        """Dirty pages merged into contiguous runs, clipped to the logical size."""
        runs: list[tuple[int, bytes]] = []
        run_start, pieces, expected = -1, list[bytes](), -1
        for number in sorted(self._pages):
            if number != expected and pieces:
                runs.append((run_start, b"".join(pieces)))
                pieces = []
            if not pieces:
                run_start = number * PAGE_SIZE
            pieces.append(bytes(self._pages[number]))
            expected = number + 1
        if pieces:
            runs.append((run_start, b"".join(pieces)))
        clipped = [(start, data[: max(0, self.size - start)]) for start, data in runs]
        return [(start, data) for start, data in clipped if data]

    def close(self) -> None:
        """Forget every dirty page and close the backing descriptor."""
        self._pages.clear()
        os.close(self.data_fd)
