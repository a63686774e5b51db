"""The FUSE kernel protocol (``linux/fuse.h``, version 7.x): opcodes, flags and wire structs.

Only what the power-loss filesystem speaks is here. Constant and struct names follow
``fuse.h`` (``FATTR_SIZE``, ``fuse_write_in`` as ``WRITE_IN`` ...); every struct is in
native byte order as the kernel lays it out (``=`` formats, no implicit padding).
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "ATTR_OUT",
    "ENTRY_OUT_HEAD",
    "IN_HEADER",
    "OUT_HEADER",
    "RequestHeader",
    "SetAttrFields",
    "attr_out",
    "dirent",
    "entry_out",
    "statfs_out",
]

KERNEL_MAJOR = 7
"""Protocol major version this daemon speaks."""
KERNEL_MINOR = 31
"""Protocol minor version this daemon answers with (the kernel uses the lower of both)."""
ROOT_ID = 1
"""Node id of the mount's root directory."""


class Opcode(IntEnum):
    """Request opcodes (``enum fuse_opcode``)."""

    LOOKUP = 1
    FORGET = 2
    GETATTR = 3
    SETATTR = 4
    READLINK = 5
    SYMLINK = 6
    MKNOD = 8
    MKDIR = 9
    UNLINK = 10
    RMDIR = 11
    RENAME = 12
    LINK = 13
    OPEN = 14
    READ = 15
    WRITE = 16
    STATFS = 17
    RELEASE = 18
    FSYNC = 20
    FLUSH = 25
    INIT = 26
    OPENDIR = 27
    READDIR = 28
    RELEASEDIR = 29
    FSYNCDIR = 30
    ACCESS = 34
    CREATE = 35
    INTERRUPT = 36
    DESTROY = 38
    BATCH_FORGET = 42
    FALLOCATE = 43
    RENAME2 = 45


INIT_BIG_WRITES = 1 << 5
INIT_MAX_PAGES = 1 << 22
INIT_ASYNC_READ = 1 << 0

FATTR_MODE = 1 << 0
FATTR_UID = 1 << 1
FATTR_GID = 1 << 2
FATTR_SIZE = 1 << 3
FATTR_ATIME = 1 << 4
FATTR_MTIME = 1 << 5
FATTR_ATIME_NOW = 1 << 7
FATTR_MTIME_NOW = 1 << 8

FSYNC_FDATASYNC = 1 << 0
FALLOC_FL_KEEP_SIZE = 0x01

IN_HEADER = struct.Struct("=IIQQIIIHH")
"""``fuse_in_header``: len, opcode, unique, nodeid, uid, gid, pid, total_extlen, padding."""
OUT_HEADER = struct.Struct("=IiQ")
"""``fuse_out_header``: len, error (negative errno), unique."""
ATTR = struct.Struct("=QQQQQQIIIIIIIIII")
"""``fuse_attr``."""
ENTRY_OUT_HEAD = struct.Struct("=QQQQII")
"""``fuse_entry_out`` without its attr: nodeid, generation, entry/attr valid (s, ns)."""
ATTR_OUT = struct.Struct("=QII")
"""``fuse_attr_out`` without its attr: attr_valid, attr_valid_nsec, dummy."""
INIT_IN = struct.Struct("=IIII")
INIT_OUT = struct.Struct("=IIIIHHIIHHI7I")
OPEN_IN = struct.Struct("=II")
OPEN_OUT = struct.Struct("=QII")
CREATE_IN = struct.Struct("=IIII")
MKDIR_IN = struct.Struct("=II")
READ_IN = struct.Struct("=QQIIQII")
WRITE_IN = struct.Struct("=QQIIQII")
WRITE_OUT = struct.Struct("=II")
RELEASE_IN = struct.Struct("=QIIQ")
FSYNC_IN = struct.Struct("=QII")
FORGET_IN = struct.Struct("=Q")
BATCH_FORGET_IN = struct.Struct("=II")
FORGET_ONE = struct.Struct("=QQ")
RENAME_IN = struct.Struct("=Q")
RENAME2_IN = struct.Struct("=QII")
SETATTR_IN = struct.Struct("=IIQQQQQQIIIIIIII")
FALLOCATE_IN = struct.Struct("=QQQII")
KSTATFS = struct.Struct("=QQQQQIIII6I")
DIRENT_HEAD = struct.Struct("=QQII")

ENTRY_TIMEOUT_S = 1
"""How long the kernel may cache names and attributes: safe, only this mount changes them."""


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """One request's ``fuse_in_header``."""

    length: int
    opcode: int
    unique: int
    nodeid: int
    uid: int
    gid: int
    pid: int

    @classmethod
    def parse(cls, buffer: bytes) -> RequestHeader:
        """Decode the header at the start of ``buffer``.

        :param buffer: one request as read from ``/dev/fuse``.
        """
        length, opcode, unique, nodeid, uid, gid, pid, _, _ = IN_HEADER.unpack_from(buffer)
        return cls(length, opcode, unique, nodeid, uid, gid, pid)


@dataclass(frozen=True, slots=True)
class SetAttrFields:
    """A decoded ``fuse_setattr_in``: which attributes to change, and to what."""

    valid: int
    size: int
    atime_ns: int
    mtime_ns: int
    mode: int
    uid: int
    gid: int

    @classmethod
    def parse(cls, body: bytes) -> SetAttrFields:
        """Decode a SETATTR request body.

        :param body: the bytes after the request header.
        """
        fields = SETATTR_IN.unpack_from(body)
        valid, size = fields[0], fields[3]
        atime, mtime = fields[5], fields[6]
        atime_ns, mtime_ns = fields[8], fields[9]
        mode, uid, gid = fields[11], fields[13], fields[14]
        return cls(
            valid,
            size,
            atime * 1_000_000_000 + atime_ns,
            mtime * 1_000_000_000 + mtime_ns,
            mode,
            uid,
            gid,
        )


def _attr(info: os.stat_result, nodeid: int, size: int) -> bytes:
    return ATTR.pack(
        nodeid,
        size,
        (size + 511) // 512,
        int(info.st_atime),
        int(info.st_mtime),
        int(info.st_ctime),
        info.st_atime_ns % 1_000_000_000,
        info.st_mtime_ns % 1_000_000_000,
        info.st_ctime_ns % 1_000_000_000,
        info.st_mode,
        info.st_nlink,
        info.st_uid,
        info.st_gid,
        info.st_rdev & 0xFFFFFFFF,
        4096,
        0,
    )


def attr_out(info: os.stat_result, nodeid: int, size: int) -> bytes:
    """A GETATTR/SETATTR reply body.

    :param info: the backing file's status.
    :param nodeid: the node id the kernel knows the file by (reported as its inode number).
    :param size: the size to report (the logical size, dirty pages included).
    """
    return ATTR_OUT.pack(ENTRY_TIMEOUT_S, 0, 0) + _attr(info, nodeid, size)


def entry_out(info: os.stat_result, nodeid: int, size: int) -> bytes:
    """A LOOKUP/MKDIR/CREATE entry reply body (see :func:`attr_out` for the parameters).

    :param info: the backing file's status.
    :param nodeid: the node id handed to the kernel.
    :param size: the logical size to report.
    """
    head = ENTRY_OUT_HEAD.pack(nodeid, 0, ENTRY_TIMEOUT_S, ENTRY_TIMEOUT_S, 0, 0)
    return head + _attr(info, nodeid, size)


def statfs_out(info: os.statvfs_result) -> bytes:
    """A STATFS reply body describing the backing filesystem.

    :param info: ``os.statvfs`` of the backing directory.
    """
    return KSTATFS.pack(
        info.f_blocks,
        info.f_bfree,
        info.f_bavail,
        info.f_files,
        info.f_ffree,
        info.f_bsize,
        info.f_namemax,
        info.f_frsize,
        0,
        *([0] * 6),
    )


def dirent(ino: int, next_offset: int, name: bytes, mode: int) -> bytes:
    """One ``fuse_dirent`` record, padded to 8 bytes.

    :param ino: inode number to report.
    :param next_offset: the offset the kernel passes to continue after this entry.
    :param name: the entry's name.
    :param mode: the entry's ``st_mode`` (only its type bits are used).
    """
    record = DIRENT_HEAD.pack(ino, next_offset, len(name), stat.S_IFMT(mode) >> 12) + name
    return record + b"\0" * (-len(record) % 8)
