"""Evidence that a replicated object behaves like a single copy: a linearizability checker.

Record what concurrent clients asked and were told with :class:`HistoryRecorder`, then check
the history against a model of the object with :func:`check_history`::

    recorder = HistoryRecorder()
    token = recorder.invoke(client=1, name="write", input=5)
    await register.write(5)
    recorder.ok(token)
    verdict = check_history(recorder.history(), RegisterModel())
    assert verdict.ok, verdict.explain()

Ready-made models cover a register, a counter, a set, a key-value map and the
:mod:`replobj.batteries` ``Dict`` and ``Queue``; any object that follows the :class:`Model`
protocol works too. See ``docs/linearizability.md``.
"""

from __future__ import annotations

from .battery_models import EMPTY, DictModel, Empty, QueueModel
from .checker import DEFAULT_BUDGET, DEFAULT_MEMORY_BUDGET, ModelError, check_history
from .history import (
    UNKNOWN,
    CallToken,
    ClientId,
    HistoryError,
    HistoryRecorder,
    Operation,
    PendingCall,
    Unknown,
)
from .model import DescribedModel, Model, PartitionedModel, ReadAwareModel, WitnessedModel
from .models import CounterModel, KeyValueModel, RegisterModel, SetModel
from .verdict import Candidate, Counterexample, Outcome, Verdict

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_MEMORY_BUDGET",
    "EMPTY",
    "UNKNOWN",
    "CallToken",
    "Candidate",
    "ClientId",
    "CounterModel",
    "Counterexample",
    "DescribedModel",
    "DictModel",
    "Empty",
    "HistoryError",
    "HistoryRecorder",
    "KeyValueModel",
    "Model",
    "ModelError",
    "Operation",
    "Outcome",
    "PartitionedModel",
    "PendingCall",
    "QueueModel",
    "ReadAwareModel",
    "RegisterModel",
    "SetModel",
    "Unknown",
    "Verdict",
    "WitnessedModel",
    "check_history",
]
