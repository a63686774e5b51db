"""replobj: embeddable replicated Python objects over Raft.

Decorate a class with :func:`replicated`, attach an instance to a :class:`Node` on
every member, and call its methods through the returned proxy: commands go through
the replicated log and apply in the same order everywhere; :func:`query` methods read.
"""

from __future__ import annotations

from . import errors
from .blocking import BlockingNode
from .entry_context import EntryInfo, current_entry
from .node import Node, NodeStatus
from .replicated import command, query, replicated
from .running import run
from .secret import new_secret

__version__ = "0.1.0"

__all__ = [
    "BlockingNode",
    "EntryInfo",
    "Node",
    "NodeStatus",
    "__version__",
    "command",
    "current_entry",
    "errors",
    "new_secret",
    "query",
    "replicated",
    "run",
]
