"""``@replicated``, ``@query``, ``@command`` and ``spec_of``: what is accepted, what is not."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from replobj.errors import NotReplicatedError, ReplicatedClassError, ReplObjError
from replobj.replicated import ObjectSpec, command, is_replicated, query, replicated, spec_of

from .objects import KV, Counter, OtherKV


def test_public_methods_are_commands_and_queries_are_marked() -> None:
    spec = spec_of(Counter)
    assert spec == ObjectSpec(
        f"{Counter.__module__}.Counter",
        frozenset({"incr", "fail", "stamp", "draw", "bad_result"}),
        frozenset({"get"}),
    )
    assert spec.is_command("incr")
    assert not spec.is_command("get")
    assert spec.is_query("get")
    assert spec_of(Counter()) is spec


def test_the_class_stays_plain() -> None:
    counter = Counter()
    assert type(counter) is Counter
    assert counter.incr(2) == 2
    assert counter.get() == 2
    assert is_replicated(counter)


def test_name_overrides_the_class_name() -> None:
    assert spec_of(OtherKV).class_name == "tests.OtherKV"
    assert spec_of(KV).class_name == f"{KV.__module__}.KV"


def test_undecorated_class_is_reported() -> None:
    class Plain:
        def run(self) -> None: ...

    with pytest.raises(NotReplicatedError, match=r"decorate it with @replobj\.replicated"):
        spec_of(Plain())
    assert not is_replicated(Plain)


def test_undecorated_subclass_is_reported() -> None:
    class Sub(Counter):
        pass

    with pytest.raises(NotReplicatedError, match="decorated itself"):
        spec_of(Sub)


def test_decorated_subclass_inherits_commands_and_queries() -> None:
    @replicated
    class Sub(Counter):
        def reset(self) -> None:
            self.value = 0

    spec = spec_of(Sub)
    assert spec.commands == spec_of(Counter).commands | {"reset"}
    assert spec.queries == {"get"}


def _decoration_error(body: dict[str, Any], bases: tuple[type, ...] = ()) -> str:
    with pytest.raises(ReplicatedClassError) as info:
        replicated(type("Bad", bases, body))
    error = info.value
    assert isinstance(error, ReplObjError)
    assert isinstance(error, TypeError)
    return str(error)


def _incr(self: Any) -> None:
    self.n = 1


async def _async_method(self: Any) -> None:
    self.n = 1


async def _async_gen(self: Any) -> AsyncIterator[int]:
    yield 1


def _gen(self: Any) -> Iterator[int]:
    yield 1


@pytest.mark.parametrize(
    ("method", "needle"),
    [(_async_method, "is `async def`"), (_async_gen, "async generator"), (_gen, "a generator")],
)
def test_async_and_generator_methods_are_rejected(method: Callable[..., Any], needle: str) -> None:
    message = _decoration_error({"incr": _incr, "other": method})
    assert needle in message
    assert "Bad.other" in message


def test_async_query_is_rejected() -> None:
    assert "is `async def`" in _decoration_error({"incr": _incr, "get": query(_async_method)})


def test_wrapped_async_method_is_rejected() -> None:
    @functools.wraps(_async_method)
    def wrapper(self: Any) -> Any:
        return _async_method(self)

    assert "is `async def`" in _decoration_error({"incr": _incr, "other": wrapper})


def test_class_without_command_is_rejected() -> None:
    message = _decoration_error({"get": query(lambda self: 1), "_helper": _incr})
    assert "has no command" in message


def test_property_with_setter_is_rejected() -> None:
    prop = property(lambda self: 1, lambda self, v: None)
    message = _decoration_error({"incr": _incr, "value": prop})
    assert "setter" in message
    assert "set_value" in message


def test_read_only_property_is_allowed_and_local() -> None:
    @replicated
    class WithProperty:
        def incr(self) -> None: ...

        @property
        def doubled(self) -> int:
            return 2

    assert spec_of(WithProperty).commands == {"incr"}
    assert spec_of(WithProperty).queries == frozenset()


def test_static_and_class_methods_are_plain_helpers() -> None:
    @replicated
    class WithHelpers:
        def incr(self) -> None: ...

        @staticmethod
        def parse(text: str) -> int:
            return int(text)

        @classmethod
        def create(cls) -> WithHelpers:
            return cls()

    spec = spec_of(WithHelpers)
    assert spec.commands == {"incr"}
    assert spec.queries == frozenset()
    assert WithHelpers.parse("3") == 3


def test_marking_static_or_class_methods_is_rejected() -> None:
    with pytest.raises(ReplicatedClassError, match="cannot mark a staticmethod"):
        query(staticmethod(_incr))
    marked_inside = staticmethod(query(lambda: 1))
    assert "static and class methods" in _decoration_error({"incr": _incr, "h": marked_inside})
    marked_cm = classmethod(command(lambda cls: 1))
    assert "classmethod marked @command" in _decoration_error({"incr": _incr, "h": marked_cm})


def test_query_on_a_non_function_is_rejected() -> None:
    with pytest.raises(ReplicatedClassError, match="plain `def` method"):
        query(functools.lru_cache(_incr))
    with pytest.raises(ReplicatedClassError, match="cannot mark a property"):
        query(property(_incr))  # type: ignore[type-var]


def test_query_on_private_method_is_rejected() -> None:
    def _hidden(self: Any) -> None: ...

    message = _decoration_error({"incr": _incr, "_hidden": query(_hidden)})
    assert "Bad._hidden is marked @query but is private" in message


def test_query_and_command_on_one_method_is_rejected() -> None:
    def both(self: Any) -> None: ...

    with pytest.raises(ReplicatedClassError, match="both @query and @command"):
        command(query(both))


def test_builtin_base_is_rejected() -> None:
    assert "builtin type 'dict'" in _decoration_error({"incr": _incr}, bases=(dict,))


def test_public_callable_that_is_not_a_function_is_rejected() -> None:
    message = _decoration_error({"incr": _incr, "cached": functools.lru_cache(_incr)})
    assert "rename it _cached" in message


def test_overriding_a_query_needs_a_mark() -> None:
    assert "overrides a @query" in _decoration_error({"get": lambda self: 2}, bases=(Counter,))

    @replicated
    class Writer(Counter):
        @command
        def get(self) -> int:
            self.value += 1
            return self.value

    assert spec_of(Writer).is_command("get")


def test_non_class_is_rejected() -> None:
    with pytest.raises(ReplicatedClassError, match="decorates classes"):
        replicated(_incr)  # type: ignore[call-overload]


def test_decorator_with_parentheses_and_bad_names() -> None:
    @replicated()
    class Plain:
        def incr(self) -> None: ...

    assert spec_of(Plain).class_name.endswith("Plain")
    with pytest.raises(ReplicatedClassError, match="non-empty str"):
        replicated(name="")(Plain)


def test_wrapped_query_keeps_its_mark() -> None:
    def logged(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any) -> Any:
            return fn(*args)

        return wrapper

    @replicated
    class Wrapped:
        def incr(self) -> None: ...

        @logged
        @query
        def get(self) -> int:
            return 1

    assert spec_of(Wrapped).queries == {"get"}
