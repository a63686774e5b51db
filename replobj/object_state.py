"""Pickling an attached object's state for a snapshot and restoring it in place."""

from __future__ import annotations

import copy
import io
import pickle
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from . import pickling
from .errors import SnapshotAbandonedError, UnpicklableStateError
from .pickling import StopFlag

__all__ = ["check_state", "dump_state", "restores_itself", "set_state"]


def _cloudpickler(file: io.BytesIO) -> pickle.Pickler:
    pickler: pickle.Pickler = cloudpickle.Pickler(file, protocol=5)
    return pickler


def dump_state(name: str, obj: Any, stop: StopFlag | None = None) -> bytes:
    """``obj``'s state (``__getstate__``) pickled, with cloudpickle as the fallback (both
    by :func:`replobj.pickling.dumps`, so a worker thread doing it lets others run).

    :param stop: once set, pickling stops.
    :raises ~replobj.errors.UnpicklableStateError: if it cannot be pickled; the message
        names the object.
    :raises ~replobj.errors.SnapshotAbandonedError: if ``stop`` was set.
    """
    state = obj.__getstate__()
    try:
        return pickling.dumps(state, stop)
    except SnapshotAbandonedError:
        raise
    except Exception:
        pass
    try:
        return pickling.dumps(state, stop, pickler=_cloudpickler)
    except SnapshotAbandonedError:
        raise
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


def restores_itself(obj: Any) -> bool:
    """Whether ``obj``'s class restores its state with its own ``__setstate__``, which may
    change the state it is given (so a state checked on a twin is decoded again for ``obj``)."""
    return getattr(type(obj), "__setstate__", None) is not None


def check_state(obj: Any, state: Any) -> None:
    """Restore ``state`` into a fresh instance of ``obj``'s class, never into ``obj``.

    A class with its own ``__setstate__`` is restored in place on a constructed instance,
    so its fresh twin first gets deep copies of ``obj``'s attributes (those that can be
    copied): its ``__setstate__`` then sees what it would see live, and cannot change
    ``obj`` through shared attributes.

    :raises Exception: whatever restoring raises (the state is not acceptable).
    """
    cls: Any = type(obj)
    fresh = cls.__new__(cls)  # as pickle makes the instance it restores into
    if restores_itself(obj):
        names = list(getattr(obj, "__dict__", {})) + _slot_names(cls)
        for name in names:
            try:
                object.__setattr__(fresh, name, copy.deepcopy(getattr(obj, name)))
            except Exception:  # not copyable (a lock, a socket): left unset
                continue
    set_state(fresh, state)


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
