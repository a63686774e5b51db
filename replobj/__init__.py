"""replobj: embeddable replicated Python objects over Raft.

Decorate a class with :func:`replicated`, attach an instance to a :class:`Node` on
every member, and call its methods through the returned proxy: commands go through
the replicated log and apply in the same order everywhere; :func:`query` methods read.
"""

from __future__ import annotations

from . import batteries, errors
from .blocking import BlockingNode
from .entry_context import EntryInfo, current_entry
from .metrics import NodeMetrics
from .node import Node, NodeStatus
from .proxy import Indexed
from .replicated import command, query, replicated
from .running import run
from .secret import new_secret
from .watch import Change

__version__ = "0.1.0"

__all__ = [
    "BlockingNode",
    "Change",
    "EntryInfo",
    "Indexed",
    "Node",
    "NodeMetrics",
    "NodeStatus",
    "__version__",
    "batteries",
    "command",
    "current_entry",
    "errors",
    "new_secret",
    "query",
    "replicated",
    "run",
]
