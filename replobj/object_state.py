"""Pickling an attached object's state for a snapshot and restoring it in place."""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from .errors import UnpicklableStateError

__all__ = ["dump_state", "set_state"]


def dump_state(name: str, obj: Any) -> bytes:
    """``obj``'s state (``__getstate__``) pickled, with cloudpickle as the fallback.

    :raises ~replobj.errors.UnpicklableStateError: if it cannot be pickled; the message
        names the object.
    """
    state = obj.__getstate__()
    try:
        return pickle.dumps(state, protocol=5)
    except Exception:
        pass
    try:
        data: bytes = cloudpickle.dumps(state, protocol=5)
        return data
    except Exception as exc:
        raise UnpicklableStateError(
            f"cannot snapshot object {name!r} ({type(obj).__qualname__}): {exc}; keep only "
            "picklable data in its attributes, or define __getstate__/__setstate__"
        ) from exc


def set_state(obj: Any, state: Any) -> None:
    """Restore ``state`` into ``obj`` in place, as pickle would into a fresh instance."""
    setstate = getattr(obj, "__setstate__", None)
    if setstate is not None:
        setstate(state)
        return
    slots: dict[str, Any] = {}
    if isinstance(state, tuple) and len(state) == 2:
        state, slots = state
        slots = slots or {}
    if hasattr(obj, "__dict__"):
        obj.__dict__.clear()
        obj.__dict__.update(state or {})
    for slot in _slot_names(type(obj)):
        if slot in slots:
            setattr(obj, slot, slots[slot])
        elif hasattr(obj, slot):
            delattr(obj, slot)


def _slot_names(cls: type) -> list[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        declared = vars(klass).get("__slots__", ())
        declared = (declared,) if isinstance(declared, str) else declared
        for slot in declared:
            if slot in ("__dict__", "__weakref__"):
                continue
            private = slot.startswith("__") and not slot.endswith("__")
            names.append(f"_{klass.__name__.lstrip('_')}{slot}" if private else slot)
    return names
