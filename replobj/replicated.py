"""The ``@replicated`` class decorator and the ``@query`` / ``@command`` markers.

Decoration only inspects the class and records an :class:`ObjectSpec` on it: the class
stays a plain class that can be constructed and unit-tested without a cluster.
Commands are identified by method *name*, never by position, so adding a method does
not change the meaning of entries already in the log.

The rules, checked once at decoration time:

- every public method (a plain ``def`` whose name does not start with ``_``) is a
  command unless marked :func:`query`; :func:`command` states it explicitly;
- commands and queries are synchronous functions returning their result: ``async def``
  and generators are rejected (they would run outside the log);
- public properties with a setter or deleter are rejected (assigning would change the
  state outside the log); read-only properties are allowed and stay local;
- public ``staticmethod``/``classmethod`` helpers are allowed but are neither commands
  nor queries (they have no replicated state); marking one is an error;
- a class needs at least one command; it may not inherit from a builtin type other
  than ``object`` (their C methods would change state outside the log);
- an override of a ``@query`` that is not itself marked is rejected, so a subclass
  cannot silently turn a read into a write.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from .errors import NotReplicatedError, ReplicatedClassError

__all__ = ["ObjectSpec", "command", "is_replicated", "query", "replicated", "spec_of"]

_F = TypeVar("_F", bound=Callable[..., Any])
_C = TypeVar("_C", bound=type)
_Kind = Literal["command", "query"]

_KIND_ATTR = "__replobj_kind__"
_SPEC_ATTR = "__replobj_spec__"


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """What ``@replicated`` recorded about a class.

    :param class_name: ``module.qualname`` (or the ``name=`` given to the decorator);
        every node must attach the same class name under the same object name.
    :param commands: names of the methods that go through the log.
    :param queries: names of the read-only methods that never enter the log.
    """

    class_name: str
    commands: frozenset[str]
    queries: frozenset[str]

    def is_command(self, method: str) -> bool:
        """Whether ``method`` is a command of this class."""
        return method in self.commands

    def is_query(self, method: str) -> bool:
        """Whether ``method`` is a query of this class."""
        return method in self.queries


def query(fn: _F) -> _F:
    """Mark a method as a read-only query: it never enters the log.

    :raises ~replobj.errors.ReplicatedClassError: if ``fn`` is not a plain ``def``
        (e.g. a property or a staticmethod) or is also marked :func:`command`; marking a
        private method is reported when its class is decorated.
    """
    return _mark(fn, "query")


def command(fn: _F) -> _F:
    """Mark a method as a command explicitly (public methods are commands by default).

    Useful to document intent, or to override a base class's ``@query`` with a command.

    :raises ~replobj.errors.ReplicatedClassError: as for :func:`query`.
    """
    return _mark(fn, "command")


def _mark(fn: _F, kind: _Kind) -> _F:
    if isinstance(fn, staticmethod | classmethod | property):
        raise ReplicatedClassError(
            f"@{kind} cannot mark a {type(fn).__name__}: commands and queries are plain "
            f"instance methods; write `def name(self, ...)` and put @{kind} directly above it"
        )
    if not inspect.isfunction(fn):
        raise ReplicatedClassError(
            f"@{kind} expects a plain `def` method, got {fn!r} ({type(fn).__name__}); "
            f"put @{kind} directly above the `def`"
        )
    previous = getattr(fn, _KIND_ATTR, kind)
    if previous != kind:
        raise ReplicatedClassError(
            f"{fn.__qualname__} is marked both @query and @command; keep only one"
        )
    setattr(fn, _KIND_ATTR, kind)
    return fn


@overload
def replicated(cls: _C, /) -> _C: ...


@overload
def replicated(*, name: str | None = None) -> Callable[[_C], _C]: ...


def replicated(cls: _C | None = None, /, *, name: str | None = None) -> _C | Callable[[_C], _C]:
    """Declare a class whose instances can be attached to a node and replicated.

    Use as ``@replicated`` or ``@replicated(name="app.KV")``; ``name`` replaces the
    default ``module.qualname`` used to check that every node attached the same class
    (set it when the module path differs between nodes, e.g. ``__main__``).

    :raises ~replobj.errors.ReplicatedClassError: if the class breaks a rule listed in
        this module's documentation; the message says what to change.
    """

    def decorate(target: _C) -> _C:
        if not isinstance(target, type):
            raise ReplicatedClassError(f"@replicated decorates classes, got {target!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ReplicatedClassError(f"@replicated(name=...) needs a non-empty str, got {name!r}")
        spec = _build_spec(target, name or f"{target.__module__}.{target.__qualname__}")
        setattr(target, _SPEC_ATTR, spec)
        return target

    if cls is None:
        return decorate
    return decorate(cls)


def spec_of(obj_or_cls: object) -> ObjectSpec:
    """The :class:`ObjectSpec` of a replicated class or of an instance of one.

    :raises ~replobj.errors.NotReplicatedError: if the class is not decorated itself
        (a subclass of a replicated class must be decorated too).
    """
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    spec = vars(cls).get(_SPEC_ATTR)
    if isinstance(spec, ObjectSpec):
        return spec
    qualname = f"{cls.__module__}.{cls.__qualname__}"
    if any(isinstance(vars(base).get(_SPEC_ATTR), ObjectSpec) for base in cls.__mro__[1:]):
        raise NotReplicatedError(
            f"{qualname} subclasses a replicated class but is not decorated itself: "
            "add @replobj.replicated to it as well"
        )
    raise NotReplicatedError(
        f"{qualname} is not a replicated class: decorate it with @replobj.replicated"
    )


def is_replicated(obj_or_cls: object) -> bool:
    """Whether :func:`spec_of` would succeed for ``obj_or_cls``."""
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    return isinstance(vars(cls).get(_SPEC_ATTR), ObjectSpec)


def _build_spec(cls: type, class_name: str) -> ObjectSpec:
    for base in cls.__mro__[1:-1]:
        if base.__module__ == "builtins":
            raise ReplicatedClassError(
                f"{cls.__qualname__} inherits from the builtin type {base.__name__!r}, whose "
                f"methods would change state outside the log: keep a {base.__name__} in an "
                "attribute instead"
            )
    commands: set[str] = set()
    queries: set[str] = set()
    for attr in _attribute_names(cls):
        definitions = [vars(k)[attr] for k in cls.__mro__[:-1] if attr in vars(k)]
        kind = _classify(cls, attr, definitions)
        if kind == "command":
            commands.add(attr)
        elif kind == "query":
            queries.add(attr)
    if not commands:
        raise ReplicatedClassError(
            f"{cls.__qualname__} has no command: every public method is a command unless "
            "marked @replobj.query; add a public method that changes the state"
        )
    return ObjectSpec(class_name, frozenset(commands), frozenset(queries))


def _attribute_names(cls: type) -> list[str]:
    names: dict[str, None] = {}
    for klass in cls.__mro__[:-1]:
        for attr, raw in vars(klass).items():
            if not attr.startswith("_"):
                names.setdefault(attr)
            elif _marked_kind(raw) is not None and getattr(raw, "__name__", None) == attr:
                raise ReplicatedClassError(
                    f"{klass.__qualname__}.{attr} is marked @{_marked_kind(raw)} but is private: "
                    "only public methods are replicated; rename it without the leading underscore"
                )
    return list(names)


def _marked_kind(raw: object) -> _Kind | None:
    target = raw.__func__ if isinstance(raw, staticmethod | classmethod) else raw
    if isinstance(raw, property):
        target = raw.fget
    kind = getattr(target, _KIND_ATTR, None)
    return kind if kind in ("command", "query") else None


def _classify(cls: type, attr: str, definitions: list[object]) -> _Kind | None:
    where = f"{cls.__qualname__}.{attr}"
    raw: Any = definitions[0]
    if isinstance(raw, property):
        if raw.fset is not None or raw.fdel is not None:
            raise ReplicatedClassError(
                f"{where} is a property with a setter or deleter, which would change the state "
                f"outside the log: make it read-only and add a command such as set_{attr}()"
            )
        if _marked_kind(raw) is not None:
            raise ReplicatedClassError(
                f"{where} is a property marked @{_marked_kind(raw)}: use a plain method instead"
            )
        return None
    if isinstance(raw, staticmethod | classmethod):
        if _marked_kind(raw) is not None:
            raise ReplicatedClassError(
                f"{where} is a {type(raw).__name__} marked @{_marked_kind(raw)}: static and "
                "class methods have no replicated state; make it an instance method"
            )
        return None
    if isinstance(raw, type) or not callable(raw):
        return None
    if not inspect.isfunction(raw):
        raise ReplicatedClassError(
            f"{where} is a {type(raw).__name__}, not a plain `def` method: commands and queries "
            f"must be plain methods; rename it _{attr} to keep it local"
        )
    _check_synchronous(where, raw)
    kind = _marked_kind(raw)
    if kind is None:
        inherited = next((k for k in map(_marked_kind, definitions[1:]) if k is not None), None)
        if inherited == "query":
            raise ReplicatedClassError(
                f"{where} overrides a @query without being marked: mark it @replobj.query, "
                "or @replobj.command if it now changes the state"
            )
        kind = "command"
    return kind


def _check_synchronous(where: str, fn: Callable[..., Any]) -> None:
    inner = inspect.unwrap(fn)
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(inner):
        problem = "is `async def`"
    elif inspect.isasyncgenfunction(fn) or inspect.isasyncgenfunction(inner):
        problem = "is an async generator"
    elif inspect.isgeneratorfunction(fn) or inspect.isgeneratorfunction(inner):
        problem = "is a generator"
    else:
        return
    raise ReplicatedClassError(
        f"{where} {problem}: commands and queries run synchronously while an entry is applied "
        "and must return their result; make it a plain `def` that returns a value (e.g. a list)"
    )
