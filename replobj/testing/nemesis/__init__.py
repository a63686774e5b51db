"""A nemesis runner: real member processes under seeded faults, with every check of issue 6.

:func:`run_seed` starts three ``python -m replobj.demo member`` processes with RocksDB data
directories on loopback, drives concurrent clients through every member (puts and
linearizable gets on a few keys, appends to a journal, local reads) while a seeded schedule
kills (SIGKILL) and restarts members, pauses them (SIGSTOP/SIGCONT) for longer than the
election timeout, and replaces a follower with a fresh member. After healing it checks that
the key-value history is linearizable, that every acknowledged append is on every replica,
that the replicas' final states are identical, that local reads never went back on a member
process, and that no member crashed. ``python -m replobj.testing.nemesis --seeds 20`` runs a
campaign; see ``docs/faults.md``.
"""

from __future__ import annotations

from .report import FAULT_KINDS, FaultEvent, RunConfig, RunReport, format_table
from .runner import MEMBER_PROGRAM, arun, run_seed

__all__ = [
    "FAULT_KINDS",
    "MEMBER_PROGRAM",
    "FaultEvent",
    "RunConfig",
    "RunReport",
    "arun",
    "format_table",
    "run_seed",
]
