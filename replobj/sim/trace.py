"""Short, readable one-line descriptions of messages and actions for event traces."""

from __future__ import annotations

from dataclasses import fields, is_dataclass

from replobj.raft import Entry, SnapshotMeta

TraceRecord = tuple[int, str, str, object]
"""``(time, node, what, detail)``; ``detail`` is formatted only when printed."""


def describe(value: object) -> str:
    """A compact rendering of a message or action: entries as ranges, metas as ``index@term``."""
    if isinstance(value, str):
        return value
    if isinstance(value, Entry):
        return f"{value.index}@{value.term}"
    if isinstance(value, SnapshotMeta):
        return f"snap {value.last_index}@{value.last_term}"
    if not is_dataclass(value) or isinstance(value, type):
        return repr(value)
    parts: list[str] = []
    for field in fields(value):
        item = getattr(value, field.name)
        if field.name == "sender" and isinstance(item, str):
            parts.insert(0, f"from {item}")
        elif field.name == "data" and isinstance(item, bytes):
            parts.append(f"data=<{len(item)} bytes>")
        elif isinstance(item, tuple) and item and isinstance(item[0], Entry):
            parts.append(f"{field.name}=[{item[0].index}..{item[-1].index}]@{item[-1].term}")
        else:
            shown = describe(item) if is_dataclass(item) else repr(item)
            parts.append(f"{field.name}={shown}")
    return f"{type(value).__name__}({', '.join(parts)})"


def format_record(record: TraceRecord) -> str:
    """One trace line: ``time node what detail``."""
    time, node, what, detail = record
    return f"{time:>7} {node:>4} {what:<8} {describe(detail)}"
