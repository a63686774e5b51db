"""Parent side: start, cut the power of, and stop a power-loss filesystem daemon."""

from __future__ import annotations

import errno
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import replobj

from .daemon import STATUS, unmount_detached
from .errors import PowerLossMountError
from .injection import DiskFaultStats, open_control, read_stats, set_errors

__all__ = ["PowerLossMount", "PowerLossStats"]


@dataclass(frozen=True, slots=True)
class PowerLossStats:
    """Counters reported by a daemon (live, or as it was when it stopped or was killed)."""

    writes: int
    """WRITE requests served."""
    bytes_written: int
    """Bytes those writes carried."""
    fsyncs: int
    """FSYNC requests served (each made its file durable)."""
    bytes_synced: int
    """Dirty bytes (whole pages) written to backing files by fsyncs and a clean stop."""
    dirty_bytes: int
    """Bytes held only in memory; after :meth:`PowerLossMount.cut`, what the cut discarded."""
    requests: int
    """Requests of any kind served."""


class PowerLossMount:
    """A FUSE mount of ``backing`` on ``mountpoint`` where unsynced writes die with power.

    Use as a context manager, or call :meth:`start` and then :meth:`cut` (power loss)
    or :meth:`stop` (clean shutdown: every dirty page is synced first). A cut mount can
    be started again on the same directories: it then shows exactly what was fsynced.
    """

    def __init__(self, backing: Path, mountpoint: Path, *, start_timeout: float = 15.0) -> None:
        """Describe the mount; nothing happens until :meth:`start`.

        :param backing: directory holding the real files (created if missing).
        :param mountpoint: directory to mount on (created if missing); never inside ``backing``.
        :param start_timeout: seconds to wait for the daemon to be serving.
        """
        self.backing = Path(backing).absolute()
        """Directory holding the durable files."""
        self.mountpoint = Path(mountpoint).absolute()
        """Where the filesystem is visible."""
        self.start_timeout = start_timeout
        self._daemon: subprocess.Popen[bytes] | None = None
        self._workdir = Path(tempfile.mkdtemp(prefix="replobj-powerloss-"))
        self._status_path = self._workdir / "status"
        self._log_path = self._workdir / "daemon.log"
        self._control = open_control(self._workdir / "disk-faults", create=True)
        self.last_stats: PowerLossStats | None = None
        """Counters of the last daemon that ended (by :meth:`cut` or :meth:`stop`)."""

    @property
    def running(self) -> bool:
        """Whether a daemon is serving this mount."""
        return self._daemon is not None

    def start(self) -> None:
        """Start the daemon and wait until the mount answers.

        :raises PowerLossMountError: if already running, or the mount cannot be made
            (the message says why and what to do).
        """
        if self._daemon is not None:
            raise PowerLossMountError(f"{self.mountpoint} is already mounted by this object")
        self.backing.mkdir(parents=True, exist_ok=True)
        self._detach_if_dead()
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        if os.path.ismount(self.mountpoint):
            raise PowerLossMountError(
                f"{self.mountpoint} is already a mount point: unmount it (umount -l) first"
            )
        package_root = str(Path(replobj.__file__).parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        with open(self._log_path, "wb") as log:
            self._daemon = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "replobj.testing.powerloss",
                    "--backing",
                    str(self.backing),
                    "--mount",
                    str(self.mountpoint),
                    "--status",
                    str(self._status_path),
                    "--faults",
                    str(self._workdir / "disk-faults"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd="/",
                env=env,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            if self._daemon is not None:
                self._kill_and_detach()
            raise

    def _detach_if_dead(self) -> None:
        """Detach a mount left behind by a daemon that died (its root fails with ENOTCONN)."""
        try:
            os.stat(self.mountpoint)
        except OSError as exc:
            if exc.errno == errno.ENOTCONN:
                unmount_detached(str(self.mountpoint))

    def _wait_ready(self) -> None:
        daemon = self._daemon
        assert daemon is not None
        assert daemon.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        received = b""
        while b"ready\n" not in received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PowerLossMountError(
                    f"the power-loss daemon for {self.mountpoint} was not ready within "
                    f"{self.start_timeout}s; its log: {self._log_text()}"
                )
            readable, _, _ = select.select([daemon.stdout], [], [], remaining)
            chunk = os.read(daemon.stdout.fileno(), 4096) if readable else b""
            if readable and not chunk:
                daemon.wait()
                daemon.stdout.close()
                self._daemon = None
                raise PowerLossMountError(
                    f"the power-loss daemon for {self.mountpoint} exited "
                    f"(status {daemon.returncode}): {self._log_text()}"
                )
            received += chunk
        if not os.path.ismount(self.mountpoint):
            raise PowerLossMountError(f"{self.mountpoint} is not a mount point after start")

    def _log_text(self) -> str:
        try:
            return self._log_path.read_text(errors="replace").strip() or "(empty)"
        except OSError:
            return "(no log)"

    def stats(self) -> PowerLossStats:
        """The daemon's counters now (or as the last daemon left them)."""
        try:
            raw = self._status_path.read_bytes()
        except FileNotFoundError:
            raw = b""
        if len(raw) < STATUS.size:
            return PowerLossStats(0, 0, 0, 0, 0, 0)
        return PowerLossStats(*STATUS.unpack_from(raw))

    def fail_disk(self, *, fsync_errno: int = errno.EIO, write_errno: int = 0) -> None:
        """Make the disk fail from the next request on, until :meth:`heal_disk`.

        Every fsync/fdatasync then returns ``fsync_errno`` and forgets the file's dirty
        pages (Linux after a writeback error); every write returns ``write_errno``
        (``errno.ENOSPC``: a full disk). The switch survives :meth:`cut` and :meth:`start`.

        :param fsync_errno: errno for fsyncs, ``0`` to leave them working.
        :param write_errno: errno for writes and fallocates, ``0`` to leave them working.
        """
        set_errors(self._control, fsync_errno=fsync_errno, write_errno=write_errno)

    def heal_disk(self) -> None:
        """Make fsyncs and writes work again (what was lost meanwhile stays lost)."""
        set_errors(self._control, fsync_errno=0, write_errno=0)

    def disk_faults(self) -> DiskFaultStats:
        """The disk-error switch and how many fsyncs and writes it has failed so far."""
        return read_stats(self._control)

    def _kill_and_detach(self) -> None:
        daemon, self._daemon = self._daemon, None
        if daemon is not None:
            daemon.kill()
            daemon.wait()
            if daemon.stdout is not None:
                daemon.stdout.close()
        unmount_detached(str(self.mountpoint))

    def cut(self) -> PowerLossStats:
        """Cut the power: SIGKILL the daemon (its dirty pages vanish) and detach the mount.

        Processes still using the mount get ``ENOTCONN`` from then on.

        :returns: the counters at the cut; ``dirty_bytes`` is what was discarded.
        :raises PowerLossMountError: if the mount is not running.
        """
        if self._daemon is None:
            raise PowerLossMountError(f"{self.mountpoint} is not mounted: nothing to cut")
        self._kill_and_detach()
        self.last_stats = self.stats()
        return self.last_stats

    def stop(self, timeout: float = 15.0) -> PowerLossStats:
        """Clean shutdown: detach the mount, let the daemon sync every dirty page, wait.

        :param timeout: seconds to wait for the daemon to finish syncing.
        :returns: the final counters (``dirty_bytes`` is what was left to sync at the end).
        :raises PowerLossMountError: if the daemon does not exit cleanly in time.
        """
        daemon = self._daemon
        if daemon is None:
            raise PowerLossMountError(f"{self.mountpoint} is not mounted: nothing to stop")
        dirty = self.stats().dirty_bytes
        unmount_detached(str(self.mountpoint))
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill_and_detach()
            raise PowerLossMountError(
                f"the power-loss daemon for {self.mountpoint} did not stop within {timeout}s "
                f"and was killed (unsynced data lost); its log: {self._log_text()}"
            ) from None
        self._daemon = None
        if daemon.stdout is not None:
            daemon.stdout.close()
        if daemon.returncode != 0:
            raise PowerLossMountError(
                f"the power-loss daemon for {self.mountpoint} failed (status "
                f"{daemon.returncode}): {self._log_text()}"
            )
        final = self.stats()
        self.last_stats = PowerLossStats(
            final.writes,
            final.bytes_written,
            final.fsyncs,
            final.bytes_synced,
            dirty,
            final.requests,
        )
        return self.last_stats

    def close(self) -> None:
        """Stop the daemon if running (killing it if a clean stop fails) and clean up."""
        try:
            if self._daemon is not None:
                self.stop()
        finally:
            if self._daemon is not None:
                self._kill_and_detach()
            self._control.close()
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> PowerLossMount:
        """Start the mount."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the mount cleanly (or kill it if that fails)."""
        self.close()
