"""The ``disk`` fault: a member's fsyncs fail with EIO for a window, then it is restarted.

After a failed fsync the data may be gone from the page cache (PostgreSQL's
"fsyncgate"), so a member must stop instead of retrying and carrying on. The fault
switches the member's power-loss mount to fail every fsync, waits for the member to
exit (it must, once it has tried to sync, and log a ``CRITICAL`` line saying why), heals
the disk, sometimes cuts its power too (a reboot: the page cache is gone), and restarts
the member on its data directory. A member that keeps running after an fsync failed,
or exits without saying why, is a problem of the run. The part of its log written
between the fault and its exit is an expected crash: the run's traceback check skips it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import anyio

from ...demo import ProcessCluster
from .power import PowerRig

__all__ = ["DiskFaultResult", "ExpectedCrash", "fail_disk_and_restart"]

_EXIT_GRACE = 5.0
"""Seconds a member may take to exit once one of its fsyncs has failed."""


@dataclass(frozen=True, slots=True)
class ExpectedCrash:
    """A stretch of a member's log where a crash was the right outcome (a failed disk).

    :param log: the member's log file.
    :param start: byte offset where the fault began.
    :param end: byte offset once the member had exited.
    """

    log: Path
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class DiskFaultResult:
    """What one ``disk`` fault did.

    :param note: a line for the report.
    :param problems: what went wrong (the member kept running, exited silently, ...).
    :param crash: the log stretch of the expected crash, if the member stopped.
    """

    note: str
    problems: tuple[str, ...]
    crash: ExpectedCrash | None


def _log_size(log: Path) -> int:
    try:
        return log.stat().st_size
    except FileNotFoundError:
        return 0


async def fail_disk_and_restart(
    cluster: ProcessCluster,
    power: PowerRig,
    target: str,
    rng: random.Random,
    election_timeout: float,
) -> DiskFaultResult:
    """Fail every fsync of ``target`` for 3 to 8 election timeouts, then heal and restart it.

    :param cluster: the running cluster.
    :param power: the members' mounts.
    :param target: the member whose disk fails.
    :param rng: the run's seeded choices (window length, reboot or not, pause).
    :param election_timeout: the members' election timeout.
    """
    member = cluster.members[target]
    log = cluster.specs[target].log_path
    start = _log_size(log)
    failed_before = power.disk_faults(target).fsyncs_failed
    window = election_timeout * rng.uniform(3.0, 8.0)
    reboot = rng.random() < 0.5
    power.fail_disk(target)
    with anyio.move_on_after(window):
        await member.exited.wait()
    if not member.exited.is_set() and power.disk_faults(target).fsyncs_failed > failed_before:
        with anyio.move_on_after(_EXIT_GRACE):
            await member.exited.wait()
    failed = power.heal_disk(target).fsyncs_failed - failed_before
    if not member.exited.is_set():
        if failed:
            return DiskFaultResult(
                f"{failed} fsyncs failed",
                (f"{target} kept running {_EXIT_GRACE:.0f} s after {failed} fsyncs failed",),
                None,
            )
        return DiskFaultResult("no fsync in the window", (), None)
    code = await member.process.wait()
    await cluster.kill(target)
    crash = ExpectedCrash(log, start, _log_size(log))
    problems: list[str] = []
    said = log.read_bytes()[crash.start : crash.end].decode(errors="replace")
    if code == 0:
        problems.append(f"{target} exited with status 0 after its fsync failed")
    if "CRITICAL" not in said:
        problems.append(f"{target} stopped after its fsync failed without a CRITICAL log line")
    notes = [f"{failed} fsyncs failed, exit {code}"]
    if reboot:
        lost = await power.cut(target)
        notes.append(f"rebooted ({lost.dirty_bytes} unsynced bytes lost)")
    await anyio.sleep(rng.uniform(0.3, 1.0))
    await cluster.restart(target)
    return DiskFaultResult("; ".join(notes), tuple(problems), crash)
