"""``local_now`` wrappers take exactly the query's parameters (:mod:`replobj.local_now`).

Each query gets a wrapper generated with its own parameter list, so arguments pass
straight through; a query whose parameters cannot be mirrored gets the generic
``*args, **kwargs`` wrapper. Either must bind every call as the query itself does:
these tests call both with the same arguments and compare the results (or that both
raise ``TypeError``). The node is a stand-in holding only the fields the checks read.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from replobj import errors
from replobj.local_now import _shape, make_local_now


def _running_node() -> Any:
    """What the fast path reads of a node that runs normally."""
    return SimpleNamespace(
        _runtime=object(), _restarted=False, diverged={}, _local_now_blocked=False
    )


def _logged(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return ("logged", fn(*args, **kwargs))

    return wrapper


class Queries:
    """Queries of every parameter shape (plain methods: the wrapper sees no decorator)."""

    def __init__(self) -> None:
        self.base = 100

    def none(self) -> int:
        return self.base

    def one(self, key: str) -> tuple[Any, ...]:
        return (self.base, key)

    def defaults(self, a: int, b: list[int] | None = None, c: str = "c") -> tuple[Any, ...]:
        return (a, b, c)

    def positional_only(self, a: int, b: int = 2, /, c: int = 3) -> tuple[int, ...]:
        return (a, b, c)

    def keyword_only(self, a: int, *, b: int, c: int = 3) -> tuple[int, ...]:
        return (a, b, c)

    def everything(
        self, a: int, /, b: int, *rest: int, c: int, d: int = 4, **more: int
    ) -> tuple[Any, ...]:
        return (a, b, rest, c, d, more)

    def clashing(self, _replobj_node: int) -> int:
        return _replobj_node

    def builtin_names(self, len: int, None_: int = 0) -> int:
        return len + None_

    @_logged
    def wrapped(self, a: int, b: int = 2) -> int:
        return a + b


CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("none", (), {}),
    ("none", (1,), {}),
    ("one", ("k",), {}),
    ("one", (), {"key": "k"}),
    ("one", (), {}),
    ("one", ("k",), {"key": "k"}),
    ("one", ("k",), {"other": 1}),
    ("defaults", (1,), {}),
    ("defaults", (1, [2]), {"c": "z"}),
    ("defaults", (), {"a": 1, "c": "z"}),
    ("defaults", (1, 2, 3, 4), {}),
    ("positional_only", (1,), {}),
    ("positional_only", (1, 5), {"c": 6}),
    ("positional_only", (), {"a": 1}),
    ("keyword_only", (1,), {"b": 2}),
    ("keyword_only", (1, 2), {}),
    ("keyword_only", (1,), {"b": 2, "c": 9}),
    ("everything", (1, 2, 3, 4), {"c": 5, "x": 6}),
    ("everything", (1,), {"b": 2, "c": 3}),
    ("everything", (1, 2), {}),
    ("everything", (), {"a": 1, "b": 2, "c": 3}),
    ("clashing", (7,), {}),
    ("clashing", (), {"_replobj_node": 7}),
    ("builtin_names", (1,), {"None_": 2}),
    ("wrapped", (1,), {}),
    ("wrapped", (1,), {"b": 5}),
]


def _outcome(call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return call(*args, **kwargs)
    except TypeError:  # the messages differ: a bound method's counts ``self``
        return TypeError


@pytest.mark.parametrize(("method", "args", "kwargs"), CALLS)
def test_the_wrapper_binds_every_call_as_the_query_does(
    method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    obj = Queries()
    bound = getattr(obj, method)
    local_now = make_local_now(_running_node(), "q", method, bound)
    assert _outcome(local_now, args, kwargs) == _outcome(bound, args, kwargs)


def test_mirrorable_queries_get_their_own_parameters_and_the_others_the_generic_ones() -> None:
    obj = Queries()
    mirrored = ["none", "one", "defaults", "positional_only", "keyword_only", "everything"]
    for method in [*mirrored, "builtin_names"]:
        assert _shape(getattr(obj, method)) is not None, method
    assert _shape(obj.clashing) is None  # a parameter would shadow the wrapper's names
    assert _shape(obj.wrapped) is None  # (*args, **kwargs): self is not a parameter
    assert _shape(print) is None
    local_now = make_local_now(_running_node(), "q", "everything", obj.everything)
    assert str(inspect.signature(local_now)) == str(inspect.signature(obj.everything))
    code = local_now.__code__
    assert code.co_argcount == 2
    assert code.co_kwonlyargcount == 2
    assert local_now.__qualname__ == "Queries.everything.local_now"
    assert not inspect.iscoroutinefunction(local_now)


def test_a_default_is_the_query_s_own_object() -> None:
    marker: list[int] = []

    class Holder:
        def read(self, into: list[int] = marker) -> list[int]:
            return into

    local_now = make_local_now(_running_node(), "q", "read", Holder().read)
    assert local_now() is marker


@pytest.mark.parametrize("method", ["one", "clashing"])
def test_both_wrappers_ask_the_node_why_when_a_check_fails(method: str) -> None:
    node = _running_node()
    node.id = "n9"
    node.check_object = lambda name: None
    local_now = make_local_now(node, "q", method, getattr(Queries(), method))
    node._restarted = node._local_now_blocked = True
    node.runtime = object()
    with pytest.raises(errors.LocalReadNotReadyError, match=rf"{method}\.local\(\.\.\.\)"):
        local_now(1)
    node._restarted = node._local_now_blocked = False
    assert local_now(1) in ((100, 1), 1)
