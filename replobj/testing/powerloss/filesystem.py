"""The power-loss filesystem's operations: metadata passes through, data waits for fsync.

Every node the kernel knows holds an ``O_PATH`` descriptor of its backing file, so
renames need no path bookkeeping. Metadata operations (create, mkdir, unlink, rename,
chmod, utimes ...) hit the backing directory at once and count as durable immediately
(a simplification: a real disk could lose an unsynced rename too). File contents go
to a :class:`~replobj.testing.powerloss.overlay.FileOverlay` per backing inode and
reach the backing file only on FSYNC (or a clean stop).
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from . import protocol as p
from .directories import OpenDirectory
from .overlay import FileOverlay

__all__ = ["Counters", "PowerLossFilesystem"]

_O_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(slots=True)
class Counters:
    """What the daemon has seen; mirrored into the status file after every request."""

    writes: int = 0
    """WRITE requests served."""
    bytes_written: int = 0
    """Bytes those writes carried."""
    fsyncs: int = 0
    """FSYNC requests served."""
    bytes_synced: int = 0
    """Dirty bytes (whole pages) written to backing files."""


@dataclass(slots=True)
class _Node:
    nodeid: int
    ino: int
    fd: int
    lookups: int = 0


_Handler = Callable[["PowerLossFilesystem", p.RequestHeader, bytes], "bytes | None"]


def _proc_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _split_names(body: bytes, count: int) -> list[bytes]:
    return body.split(b"\0")[:count]


class PowerLossFilesystem:
    """Answers FUSE requests over a backing directory; unsynced data lives in memory."""

    def __init__(self, backing: str) -> None:
        """Serve the directory ``backing``.

        :param backing: the backing directory (must not be inside the mount).
        """
        self.backing = backing
        self.counters = Counters()
        """Running totals (writes, fsyncs, dirty bytes)."""
        self.opcodes: Counter[int] = Counter()
        """Requests seen, by opcode (reported at a clean stop)."""
        root_fd = os.open(backing, _O_PATH_FLAGS | os.O_DIRECTORY)
        root = _Node(p.ROOT_ID, os.fstat(root_fd).st_ino, root_fd, 1)
        self._nodes: dict[int, _Node] = {p.ROOT_ID: root}
        self._by_ino: dict[int, int] = {root.ino: p.ROOT_ID}
        self._next_nodeid = p.ROOT_ID + 1
        self._overlays: dict[int, FileOverlay] = {}
        self._files: dict[int, int] = {}
        self._dirs: dict[int, OpenDirectory] = {}
        self._next_handle = 1

    # --- bookkeeping --------------------------------------------------------------

    def dirty_bytes(self) -> int:
        """Bytes (whole pages) held only in memory: what a power cut now would discard."""
        return sum(overlay.dirty_bytes for overlay in self._overlays.values())

    def _node(self, nodeid: int) -> _Node:
        node = self._nodes.get(nodeid)
        if node is None:
            raise OSError(errno.ESTALE, "unknown node id")
        return node

    def _size(self, info: os.stat_result) -> int:
        overlay = self._overlays.get(info.st_ino)
        return info.st_size if overlay is None else overlay.size

    def _entry(self, parent: _Node, name: bytes) -> bytes:
        fd = os.open(name, _O_PATH_FLAGS, dir_fd=parent.fd)
        info = os.fstat(fd)
        nodeid = self._by_ino.get(info.st_ino)
        if nodeid is None:
            nodeid = self._next_nodeid
            self._next_nodeid += 1
            self._nodes[nodeid] = _Node(nodeid, info.st_ino, fd)
            self._by_ino[info.st_ino] = nodeid
        else:
            os.close(fd)
        node = self._nodes[nodeid]
        node.lookups += 1
        return p.entry_out(info, nodeid, self._size(info))

    def _forget(self, nodeid: int, count: int) -> None:
        node = self._nodes.get(nodeid)
        if node is None or nodeid == p.ROOT_ID:
            return
        node.lookups -= count
        if node.lookups <= 0:
            del self._nodes[nodeid]
            del self._by_ino[node.ino]
            os.close(node.fd)

    def _overlay(self, node: _Node) -> FileOverlay:
        overlay = self._overlays.get(node.ino)
        if overlay is None:
            fd = os.open(_proc_path(node.fd), os.O_RDWR | os.O_CLOEXEC)
            overlay = FileOverlay(fd)
            self._overlays[node.ino] = overlay
        return overlay

    def _settle(self, ino: int) -> None:
        """Drop the overlay of ``ino`` once nothing needs it (clean, or file deleted)."""
        overlay = self._overlays.get(ino)
        if overlay is None or overlay.open_handles:
            return
        if not overlay.dirty or os.fstat(overlay.data_fd).st_nlink == 0:
            overlay.close()
            del self._overlays[ino]

    def _ino_of(self, parent: _Node, name: bytes) -> int | None:
        try:
            return os.stat(name, dir_fd=parent.fd, follow_symlinks=False).st_ino
        except FileNotFoundError:
            return None

    def _open_handle(self, overlay: FileOverlay, ino: int) -> bytes:
        handle = self._next_handle
        self._next_handle += 1
        self._files[handle] = ino
        overlay.open_handles += 1
        return p.OPEN_OUT.pack(handle, 0, 0)

    def _handle_overlay(self, handle: int) -> FileOverlay:
        ino = self._files.get(handle)
        if ino is None:
            raise OSError(errno.EBADF, "unknown file handle")
        return self._overlays[ino]

    # --- requests ----------------------------------------------------------------

    def handle(self, header: p.RequestHeader, body: bytes) -> bytes | None:
        """Answer one request; ``None`` means the opcode takes no reply.

        :param header: the decoded request header.
        :param body: the bytes after the header.
        :raises OSError: with the errno to send back.
        """
        self.opcodes[header.opcode] += 1
        method = self._handlers.get(header.opcode)
        if method is None:
            raise OSError(errno.ENOSYS, "operation not supported")
        return method(self, header, body)

    def _lookup(self, header: p.RequestHeader, body: bytes) -> bytes:
        return self._entry(self._node(header.nodeid), _split_names(body, 1)[0])

    def _forget_one(self, header: p.RequestHeader, body: bytes) -> None:
        self._forget(header.nodeid, p.FORGET_IN.unpack_from(body)[0])

    def _batch_forget(self, header: p.RequestHeader, body: bytes) -> None:
        count, _ = p.BATCH_FORGET_IN.unpack_from(body)
        for index in range(count):
            offset = p.BATCH_FORGET_IN.size + index * p.FORGET_ONE.size
            self._forget(*p.FORGET_ONE.unpack_from(body, offset))

    def _getattr(self, header: p.RequestHeader, body: bytes) -> bytes:
        info = os.fstat(self._node(header.nodeid).fd)
        return p.attr_out(info, header.nodeid, self._size(info))

    def _setattr(self, header: p.RequestHeader, body: bytes) -> bytes:
        node, change = self._node(header.nodeid), p.SetAttrFields.parse(body)
        path = _proc_path(node.fd)
        if change.valid & p.FATTR_MODE:
            os.chmod(path, stat.S_IMODE(change.mode))
        if change.valid & (p.FATTR_UID | p.FATTR_GID):
            uid = change.uid if change.valid & p.FATTR_UID else -1
            gid = change.gid if change.valid & p.FATTR_GID else -1
            os.chown(path, uid, gid)
        if change.valid & p.FATTR_SIZE:
            if stat.S_ISDIR(os.fstat(node.fd).st_mode):
                raise OSError(errno.EISDIR, "cannot truncate a directory")
            self._overlay(node).truncate(change.size)
            self._settle(node.ino)
        times = p.FATTR_ATIME | p.FATTR_MTIME | p.FATTR_ATIME_NOW | p.FATTR_MTIME_NOW
        if change.valid & times:
            info, now = os.fstat(node.fd), time.time_ns()
            atime = info.st_atime_ns
            if change.valid & p.FATTR_ATIME:
                atime = now if change.valid & p.FATTR_ATIME_NOW else change.atime_ns
            mtime = info.st_mtime_ns
            if change.valid & p.FATTR_MTIME:
                mtime = now if change.valid & p.FATTR_MTIME_NOW else change.mtime_ns
            os.utime(path, ns=(atime, mtime))
        return self._getattr(header, body)

    def _mkdir(self, header: p.RequestHeader, body: bytes) -> bytes:
        mode, _ = p.MKDIR_IN.unpack_from(body)
        parent = self._node(header.nodeid)
        name = _split_names(body[p.MKDIR_IN.size :], 1)[0]
        os.mkdir(name, stat.S_IMODE(mode), dir_fd=parent.fd)
        os.chown(name, header.uid, header.gid, dir_fd=parent.fd, follow_symlinks=False)
        return self._entry(parent, name)

    def _unlink(self, header: p.RequestHeader, body: bytes) -> bytes:
        parent, name = self._node(header.nodeid), _split_names(body, 1)[0]
        ino = self._ino_of(parent, name)
        os.unlink(name, dir_fd=parent.fd)
        if ino is not None:
            self._settle(ino)
        return b""

    def _rmdir(self, header: p.RequestHeader, body: bytes) -> bytes:
        parent, name = self._node(header.nodeid), _split_names(body, 1)[0]
        os.rmdir(name, dir_fd=parent.fd)
        return b""

    def _rename(self, header: p.RequestHeader, body: bytes) -> bytes:
        (newdir,) = p.RENAME_IN.unpack_from(body)
        return self._do_rename(header.nodeid, newdir, body[p.RENAME_IN.size :])

    def _rename2(self, header: p.RequestHeader, body: bytes) -> bytes:
        newdir, flags, _ = p.RENAME2_IN.unpack_from(body)
        if flags:
            raise OSError(errno.EINVAL, "rename flags (NOREPLACE, EXCHANGE ...) unsupported")
        return self._do_rename(header.nodeid, newdir, body[p.RENAME2_IN.size :])

    def _do_rename(self, olddir: int, newdir: int, names: bytes) -> bytes:
        old_name, new_name = _split_names(names, 2)
        source, target = self._node(olddir), self._node(newdir)
        replaced = self._ino_of(target, new_name)
        os.rename(old_name, new_name, src_dir_fd=source.fd, dst_dir_fd=target.fd)
        if replaced is not None:
            self._settle(replaced)
        return b""

    def _open(self, header: p.RequestHeader, body: bytes) -> bytes:
        flags, _ = p.OPEN_IN.unpack_from(body)
        node = self._node(header.nodeid)
        overlay = self._overlay(node)
        if flags & os.O_TRUNC:
            overlay.truncate(0)
        return self._open_handle(overlay, node.ino)

    def _create(self, header: p.RequestHeader, body: bytes) -> bytes:
        flags, mode, _, _ = p.CREATE_IN.unpack_from(body)
        parent = self._node(header.nodeid)
        name = _split_names(body[p.CREATE_IN.size :], 1)[0]
        create_flags = os.O_CREAT | os.O_RDWR | os.O_CLOEXEC | (flags & os.O_EXCL)
        fd = os.open(name, create_flags, stat.S_IMODE(mode), dir_fd=parent.fd)
        try:
            os.fchown(fd, header.uid, header.gid)
        finally:
            os.close(fd)
        entry = self._entry(parent, name)
        node = self._nodes[p.ENTRY_OUT_HEAD.unpack_from(entry)[0]]
        overlay = self._overlay(node)
        if flags & os.O_TRUNC:
            overlay.truncate(0)
        return entry + self._open_handle(overlay, node.ino)

    def _read(self, header: p.RequestHeader, body: bytes) -> bytes:
        handle, offset, size, *_ = p.READ_IN.unpack_from(body)
        return self._handle_overlay(handle).read(offset, size)

    def _write(self, header: p.RequestHeader, body: bytes) -> bytes:
        handle, offset, size, *_ = p.WRITE_IN.unpack_from(body)
        overlay = self._handle_overlay(handle)
        data = body[p.WRITE_IN.size : p.WRITE_IN.size + size]
        overlay.write(offset, data)
        self.counters.writes += 1
        self.counters.bytes_written += len(data)
        return p.WRITE_OUT.pack(len(data), 0)

    def _fsync(self, header: p.RequestHeader, body: bytes) -> bytes:
        handle, _, _ = p.FSYNC_IN.unpack_from(body)
        self.counters.bytes_synced += self._handle_overlay(handle).sync()
        self.counters.fsyncs += 1
        return b""

    def fail_fsync(self, body: bytes) -> None:
        """An FSYNC the disk fails: the file's dirty pages are lost (see ``injection``).

        :param body: the FSYNC request's body.
        """
        self._handle_overlay(p.FSYNC_IN.unpack_from(body)[0]).discard()

    def _fallocate(self, header: p.RequestHeader, body: bytes) -> bytes:
        handle, offset, length, mode, _ = p.FALLOCATE_IN.unpack_from(body)
        overlay = self._handle_overlay(handle)
        if mode & ~p.FALLOC_FL_KEEP_SIZE:
            raise OSError(errno.EOPNOTSUPP, "only plain and KEEP_SIZE fallocate")
        if not mode & p.FALLOC_FL_KEEP_SIZE and offset + length > overlay.size:
            overlay.truncate(offset + length)
        return b""

    def _release(self, header: p.RequestHeader, body: bytes) -> bytes:
        handle = p.RELEASE_IN.unpack_from(body)[0]
        ino = self._files.pop(handle, None)
        if ino is not None:
            self._overlays[ino].open_handles -= 1
            self._settle(ino)
        return b""

    def _opendir(self, header: p.RequestHeader, body: bytes) -> bytes:
        node = self._node(header.nodeid)
        fd = os.open(_proc_path(node.fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        handle = self._next_handle
        self._next_handle += 1
        self._dirs[handle] = OpenDirectory(fd)
        return p.OPEN_OUT.pack(handle, 0, 0)

    def _readdir(self, header: p.RequestHeader, body: bytes) -> bytes:
        handle, offset, size, *_ = p.READ_IN.unpack_from(body)
        directory = self._dirs.get(handle)
        if directory is None:
            raise OSError(errno.EBADF, "unknown directory handle")
        return directory.read(header.nodeid, offset, size)

    def _releasedir(self, header: p.RequestHeader, body: bytes) -> bytes:
        directory = self._dirs.pop(p.RELEASE_IN.unpack_from(body)[0], None)
        if directory is not None:
            directory.close()
        return b""

    def _statfs(self, header: p.RequestHeader, body: bytes) -> bytes:
        return p.statfs_out(os.statvfs(self.backing))

    def _nothing(self, header: p.RequestHeader, body: bytes) -> bytes:
        return b""

    def _no_reply(self, header: p.RequestHeader, body: bytes) -> None:
        return None

    _handlers: ClassVar[dict[int, _Handler]] = {
        p.Opcode.LOOKUP: _lookup,
        p.Opcode.FORGET: _forget_one,
        p.Opcode.BATCH_FORGET: _batch_forget,
        p.Opcode.GETATTR: _getattr,
        p.Opcode.SETATTR: _setattr,
        p.Opcode.MKDIR: _mkdir,
        p.Opcode.UNLINK: _unlink,
        p.Opcode.RMDIR: _rmdir,
        p.Opcode.RENAME: _rename,
        p.Opcode.RENAME2: _rename2,
        p.Opcode.OPEN: _open,
        p.Opcode.CREATE: _create,
        p.Opcode.READ: _read,
        p.Opcode.WRITE: _write,
        p.Opcode.FSYNC: _fsync,
        p.Opcode.FALLOCATE: _fallocate,
        p.Opcode.RELEASE: _release,
        p.Opcode.OPENDIR: _opendir,
        p.Opcode.READDIR: _readdir,
        p.Opcode.RELEASEDIR: _releasedir,
        p.Opcode.FSYNCDIR: _nothing,
        p.Opcode.FLUSH: _nothing,
        p.Opcode.ACCESS: _nothing,
        p.Opcode.STATFS: _statfs,
        p.Opcode.INTERRUPT: _no_reply,
    }

    def sync_all(self) -> None:
        """Make every dirty file durable (a clean shutdown), then close all descriptors."""
        for ino in list(self._overlays):
            overlay = self._overlays.pop(ino)
            if overlay.dirty and os.fstat(overlay.data_fd).st_nlink:
                self.counters.bytes_synced += overlay.sync()
            overlay.close()
        for directory in self._dirs.values():
            directory.close()
        for node in self._nodes.values():
            os.close(node.fd)
        self._nodes.clear()
        self._dirs.clear()
