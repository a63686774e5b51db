"""The filesystem daemon: mounts FUSE with mount(2) and answers ``/dev/fuse`` requests.

Run it as ``python -m replobj.testing.powerloss --backing DIR --mount MNT --status FILE
[--faults FILE]`` (normally through :class:`~replobj.testing.powerloss.PowerLossMount`;
``--faults`` is the disk-error switch of :mod:`~replobj.testing.powerloss.injection`). It prints
``ready`` on stdout once the kernel's INIT is answered. SIGTERM or an unmount is a clean
stop: every dirty page is synced to the backing files first. SIGKILL is a power cut.
The status file holds live counters (see :data:`STATUS`), readable after a SIGKILL.
If stdout is a pipe and its reader goes away (the controlling process died), the
daemon detaches its mount and kills itself, so no orphan keeps serving.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import mmap
import os
import select
import signal
import stat
import struct
import sys
import threading
import traceback
from types import FrameType

from . import protocol as p
from .errors import PowerLossMountError
from .filesystem import PowerLossFilesystem
from .injection import DiskFaultSwitch, open_control

__all__ = ["STATUS", "main", "mount_fuse", "serve", "unmount_detached"]

MAX_WRITE = 1 << 20
"""Largest WRITE the kernel may send (negotiated with FUSE_MAX_PAGES)."""
_BUFFER_SIZE = MAX_WRITE + 4096
_MS_NOSUID = 2
_MS_NODEV = 4
_MNT_DETACH = 2
STATUS = struct.Struct("=QQQQQQ")
"""Status file layout: writes, bytes written, fsyncs, bytes synced, dirty bytes, requests."""

_libc = ctypes.CDLL(None, use_errno=True)
_controller_gone = threading.Event()


class _StopRequested(Exception):
    pass


def mount_fuse(mountpoint: str) -> int:
    """Open ``/dev/fuse`` and mount a FUSE filesystem on ``mountpoint`` served through it.

    :param mountpoint: an existing directory.
    :returns: the ``/dev/fuse`` descriptor to serve requests on.
    :raises PowerLossMountError: if FUSE is unavailable or mounting is not permitted.
    """
    try:
        fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise PowerLossMountError(
            "/dev/fuse does not exist: load the FUSE module (modprobe fuse), or give the "
            "container the device (docker run --device /dev/fuse --cap-add SYS_ADMIN)"
        ) from exc
    except PermissionError as exc:
        raise PowerLossMountError(
            f"cannot open /dev/fuse ({exc.strerror}): run the power-loss tests as root"
        ) from exc
    options = (
        f"fd={fd},rootmode=40000,user_id={os.getuid()},group_id={os.getgid()},"
        f"allow_other,default_permissions,max_read={MAX_WRITE}"
    )
    result = _libc.mount(
        b"replobj-powerloss",
        os.fsencode(mountpoint),
        b"fuse",
        _MS_NOSUID | _MS_NODEV,
        options.encode(),
    )
    if result != 0:
        code = ctypes.get_errno()
        os.close(fd)
        hint = {
            errno.EPERM: "mounting needs root with CAP_SYS_ADMIN (in a container: "
            "--cap-add SYS_ADMIN --device /dev/fuse, or --privileged)",
            errno.ENODEV: "the kernel has no 'fuse' filesystem: modprobe fuse",
            errno.ENOENT: "the mount point does not exist",
            errno.ENOTCONN: "a dead FUSE mount sits on the mount point: umount -l it",
        }.get(code, "see mount(2)")
        raise PowerLossMountError(f"mount {mountpoint!r} failed: {os.strerror(code)}; {hint}")
    return fd


def unmount_detached(mountpoint: str) -> bool:
    """Lazily unmount ``mountpoint`` (``umount2(MNT_DETACH)``).

    :param mountpoint: the mount point.
    :returns: ``False`` if nothing was mounted there.
    :raises PowerLossMountError: if the unmount is refused for another reason.
    """
    if _libc.umount2(os.fsencode(mountpoint), _MNT_DETACH) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOENT):
        return False
    raise PowerLossMountError(f"umount2 {mountpoint!r} failed: {os.strerror(code)}")


def _init_reply(body: bytes) -> bytes:
    major, minor, max_readahead, offered = p.INIT_IN.unpack_from(body)
    if major != p.KERNEL_MAJOR or minor < 23:
        raise OSError(errno.EPROTO, f"unsupported FUSE protocol {major}.{minor}")
    wanted = p.INIT_BIG_WRITES | p.INIT_MAX_PAGES | p.INIT_ASYNC_READ
    return p.INIT_OUT.pack(
        p.KERNEL_MAJOR,
        p.KERNEL_MINOR,
        max_readahead,
        offered & wanted,
        16,
        12,
        MAX_WRITE,
        1,
        MAX_WRITE // mmap.PAGESIZE,
        0,
        0,
        *([0] * 7),
    )


def _reply(fd: int, unique: int, error: int, body: bytes) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.write(fd, p.OUT_HEADER.pack(p.OUT_HEADER.size + len(body), -error, unique) + body)


def serve(
    fuse_fd: int,
    filesystem: PowerLossFilesystem,
    status: mmap.mmap,
    disk_faults: DiskFaultSwitch | None = None,
) -> str:
    """Answer requests until unmounted or SIGTERM/SIGINT; the caller then syncs and exits.

    :param fuse_fd: the ``/dev/fuse`` descriptor of the mount.
    :param filesystem: the operations.
    :param status: the mapped status file, updated after every request.
    :param disk_faults: the switch that makes fsyncs or writes fail (``None``: never).
    :returns: why serving stopped (``"unmounted"`` or ``"signal"``).
    """
    state = {"idle": False, "stop": False}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        state["stop"] = True
        if state["idle"]:
            state["idle"] = False
            raise _StopRequested

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    requests = 0
    counters = filesystem.counters
    switch = disk_faults or DiskFaultSwitch(None)
    try:
        while True:
            state["idle"] = True
            if state["stop"]:
                state["idle"] = False
                return "signal"
            try:
                request = os.read(fuse_fd, _BUFFER_SIZE)
            except OSError as exc:
                if exc.errno == errno.ENODEV:
                    state["idle"] = False
                    return "unmounted"
                if exc.errno in (errno.ENOENT, errno.EAGAIN):
                    continue
                raise
            state["idle"] = False
            header = p.RequestHeader.parse(request)
            body = request[p.IN_HEADER.size : header.length]
            try:
                injected = switch.injected_error(header.opcode)
                if header.opcode == p.Opcode.INIT:
                    reply: bytes | None = _init_reply(body)
                elif injected:
                    if header.opcode == p.Opcode.FSYNC:
                        filesystem.fail_fsync(body)
                    raise OSError(injected, os.strerror(injected))
                else:
                    reply = filesystem.handle(header, body)
                error = 0
            except OSError as exc:
                reply, error = b"", exc.errno or errno.EIO
            except Exception:
                traceback.print_exc()
                reply, error = b"", errno.EIO
            requests += 1
            STATUS.pack_into(
                status,
                0,
                counters.writes,
                counters.bytes_written,
                counters.fsyncs,
                counters.bytes_synced,
                filesystem.dirty_bytes(),
                requests,
            )
            if reply is not None:
                _reply(fuse_fd, header.unique, error, reply)
            if header.opcode == p.Opcode.INIT and not error:
                sys.stdout.write("ready\n")
                sys.stdout.flush()
    except _StopRequested:
        return "signal"


def _watch_parent(mountpoint: str) -> None:
    """If whoever started us dies (our stdout pipe loses its reader), cut our own power.

    Leaves no orphan daemon serving a mount nobody will stop: detach the mount, then
    SIGKILL this process (unsynced data is lost, as at a cut).
    """
    poller = select.poll()
    poller.register(sys.stdout.fileno(), select.POLLERR | select.POLLHUP)
    while not poller.poll():
        pass
    _controller_gone.set()
    with contextlib.suppress(PowerLossMountError):
        unmount_detached(mountpoint)
    os.kill(os.getpid(), signal.SIGKILL)


def _open_status(path: str) -> mmap.mmap:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.ftruncate(fd, STATUS.size)
        return mmap.mmap(fd, STATUS.size)
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    """Mount, serve until stopped, sync every dirty page, exit.

    :param argv: command-line arguments (default ``sys.argv[1:]``).
    :returns: the exit status (2 if mounting failed).
    """
    parser = argparse.ArgumentParser(
        prog="python -m replobj.testing.powerloss",
        description="FUSE passthrough that keeps unsynced writes in memory only.",
    )
    parser.add_argument("--backing", required=True, help="directory holding the real files")
    parser.add_argument("--mount", required=True, help="empty directory to mount on")
    parser.add_argument("--status", required=True, help="file for live counters")
    parser.add_argument("--faults", default=None, help="disk-error control file (injection)")
    args = parser.parse_args(argv)
    os.umask(0)
    os.chdir("/")
    backing, mountpoint = os.path.realpath(args.backing), os.path.realpath(args.mount)
    if backing == mountpoint or backing.startswith(mountpoint + os.sep):
        print(f"error: backing {backing} is inside the mount point", file=sys.stderr)
        return 2
    status = _open_status(args.status)
    filesystem = PowerLossFilesystem(backing)
    try:
        fuse_fd = mount_fuse(mountpoint)
    except PowerLossMountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode):
        threading.Thread(target=_watch_parent, args=(mountpoint,), daemon=True).start()
    control = None if args.faults is None else open_control(args.faults, create=True)
    reason = serve(fuse_fd, filesystem, status, DiskFaultSwitch(control))
    if _controller_gone.is_set():
        os.kill(os.getpid(), signal.SIGKILL)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    filesystem.sync_all()
    counters = filesystem.counters
    print(
        f"stopped ({reason}): writes={counters.writes} bytes_written={counters.bytes_written} "
        f"fsyncs={counters.fsyncs} bytes_synced={counters.bytes_synced}",
        file=sys.stderr,
    )
    seen = sorted(filesystem.opcodes.items())
    names = {int(code): code.name for code in p.Opcode}
    print(
        "requests: " + " ".join(f"{names.get(code, code)}={count}" for code, count in seen),
        file=sys.stderr,
    )
    os.close(fuse_fd)
    return 0
