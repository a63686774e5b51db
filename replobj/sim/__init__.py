"""Deterministic simulation of whole Raft clusters (sans-I/O cores, simulated time).

One seed fixes everything: cluster size, limits, network faults, the fault schedule
and client load. Safety properties are checked after every event; a failing run
raises :class:`SimulationFailure` (an ``AssertionError``) naming the seed and the
command that replays it, ``python -m replobj.sim --seed N -v``.
"""

from __future__ import annotations

from .checks import SafetyChecker, SafetyViolation
from .cluster import SimCluster
from .engine import SimParams, SimulationFailure
from .network import NetworkFaults
from .scenario import SeedResult, run_seed
from .soak import SoakSummary, run_many

__all__ = [
    "NetworkFaults",
    "SafetyChecker",
    "SafetyViolation",
    "SeedResult",
    "SimCluster",
    "SimParams",
    "SimulationFailure",
    "SoakSummary",
    "run_many",
    "run_seed",
]
