"""``proxy.query.local_now(...)``: a local read as a plain call, for async code.

``await proxy.query.local(...)`` pays for a coroutine and an await on every read, more
than the method call itself. ``local_now`` is a plain function: it makes the checks
``local()`` makes, runs the query outside any current entry, and returns. It never
yields (a loop of them is the caller's own blocking code) and never waits: where
``local()`` would wait (the first read after a restart) it raises
:class:`~replobj.errors.LocalReadNotReadyError`.

Any wrapper costs a Python frame on top of the query's own; forwarding ``*args,
**kwargs`` costs about as much again (a tuple and a dict packed, then unpacked into the
call). So :func:`make_local_now` generates each query's wrapper with the query's own
parameter list (as :mod:`dataclasses` generates ``__init__``), and the arguments pass
straight through. A query whose parameters it cannot mirror exactly gets the generic
``*args, **kwargs`` wrapper, which behaves the same, only slower.

The wrapper makes one check of the node's state: ``Node._local_now_blocked``, which the
node keeps true while it is stopped, restarted and not yet caught up, or has a diverged
object (three checks folded into one attribute: they were most of the read's cost
besides the call). When it holds, :func:`refuse_local_now` says why (or lets the read
run: another object diverged, not this one).
"""

from __future__ import annotations

import functools
import inspect
import keyword
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import errors
from .entry_context import _current as _current_entry
from .entry_context import run_in_entry

if TYPE_CHECKING:
    from .node import Node

__all__ = ["make_local_now", "refuse_local_now"]

_PREFIX = "_replobj_"
"""Names of the generated code's own variables start with this; a query whose parameters
do too gets the generic wrapper (no parameter may shadow them)."""

_DOC = """Run the query {query} on this replica's current state at once and return its result.

A plain call, not a coroutine: it never yields to the event loop and never waits. A loop
of these calls is the caller's own blocking code: inside a loop, await ``.local(...)``
or yield yourself (``await anyio.lowlevel.checkpoint()``) now and then, or the node's
heartbeats stop. Call it only from the node's event-loop thread.

:raises ~replobj.errors.NodeStoppedError: if the node is not running.
:raises ~replobj.errors.ClassMismatchError: if this replica of the object diverged.
:raises ~replobj.errors.LocalReadNotReadyError: after a (re)start, until one
    ``await proxy.{method}.local(...)`` or ``await node.local_read_ready()`` has caught
    this replica up.
"""


def make_local_now(node: Node, name: str, method: str, bound: Callable[..., Any]) -> Any:
    """The ``local_now`` function of the query ``bound`` (``method`` of the object
    attached as ``name`` on ``node``): ``bound``'s parameters where they can be mirrored,
    ``*args, **kwargs`` otherwise."""
    refuse = functools.partial(refuse_local_now, node, name, method)
    shape = _shape(bound)
    if shape is None:
        local_now = _generic(node, bound, refuse)
    else:
        factory = _factory(*shape[:4])
        local_now = factory(node, bound, _current_entry.get, refuse, run_in_entry)
        local_now.__defaults__, local_now.__kwdefaults__ = shape[4], shape[5]
    query = getattr(bound, "__qualname__", method)
    local_now.__name__ = "local_now"
    local_now.__qualname__ = f"{query}.local_now"
    local_now.__doc__ = _DOC.format(query=query, method=method)
    local_now.__wrapped__ = bound  # inspect.signature() shows the query's parameters
    return local_now


def refuse_local_now(node: Node, name: str, method: str) -> None:
    """Raise why ``local_now`` cannot read ``name`` on ``node`` now, or return if it can
    (another object diverged, not this one): the slow path of the inlined checks.

    :raises ~replobj.errors.ClassMismatchError: if this replica of ``name`` diverged.
    :raises ~replobj.errors.NodeStoppedError: if the node is not running.
    :raises ~replobj.errors.LocalReadNotReadyError: if the node restarted and no local
        read has caught it up since.
    """
    node.check_object(name)
    node.runtime  # noqa: B018 - raise NodeStoppedError
    if node._restarted:
        raise errors.LocalReadNotReadyError(
            f"node {node.id!r} has (re)started and may not yet have applied everything it "
            f"served before, so {method}.local_now() cannot answer yet (local reads never go "
            f"backwards); `await proxy.{method}.local(...)` once, or `await "
            "node.local_read_ready()`, to catch up with one ReadIndex barrier, then call "
            "local_now() again"
        )


def _generic(node: Node, bound: Callable[..., Any], refuse: Callable[[], None]) -> Any:
    current = _current_entry.get

    def local_now(*args: Any, **kwargs: Any) -> Any:
        if node._local_now_blocked:
            refuse()
        if current() is None:
            return bound(*args, **kwargs)
        return run_in_entry(None, bound, args, kwargs)

    return local_now


_Shape = tuple[str, str, str, str, tuple[Any, ...] | None, dict[str, Any] | None]
"""Parameter list, call arguments, the call's positional tuple and keyword dict (the
source text of each), then the defaults and keyword-only defaults."""


def _shape(bound: Callable[..., Any]) -> _Shape | None:
    """How to mirror ``bound``'s parameters (from its code object: what the interpreter
    binds, whatever ``__signature__`` says), or ``None`` where the generic wrapper must
    do: not a method of a plain function, ``self`` caught by ``*args`` or given a
    default, or a parameter name that is not a plain identifier or starts with
    :data:`_PREFIX`."""
    func = getattr(bound, "__func__", None)
    if not isinstance(bound, types.MethodType) or not isinstance(func, types.FunctionType):
        return None
    code = func.__code__
    count, keyword_only = code.co_argcount, code.co_kwonlyargcount
    defaults = func.__defaults__
    if count == 0 or len(defaults or ()) >= count:
        return None
    names = code.co_varnames
    positional = list(names[1:count])
    keywords = list(names[count : count + keyword_only])
    rest = count + keyword_only
    star = names[rest] if code.co_flags & inspect.CO_VARARGS else None
    rest += star is not None
    star2 = names[rest] if code.co_flags & inspect.CO_VARKEYWORDS else None
    every = [*positional, *keywords, *([star] if star else []), *([star2] if star2 else [])]
    if any(not n.isidentifier() or keyword.iskeyword(n) or n.startswith(_PREFIX) for n in every):
        return None
    params = list(positional)
    if code.co_posonlyargcount > 1:
        params.insert(code.co_posonlyargcount - 1, "/")
    if star is not None or keywords:
        params.append("*" if star is None else f"*{star}")
    params += keywords
    pos_args = positional + ([f"*{star}"] if star else [])
    kw_args = [f"{n}={n}" for n in keywords] + ([f"**{star2}"] if star2 else [])
    kw_items = [f"{n!r}: {n}" for n in keywords] + ([f"**{star2}"] if star2 else [])
    if star2 is not None:
        params.append(f"**{star2}")
    kwdefaults = func.__kwdefaults__
    return (
        ", ".join(params),
        ", ".join(pos_args + kw_args),
        "(" + "".join(f"{a}, " for a in pos_args) + ")",
        "{" + ", ".join(kw_items) + "}",
        defaults,
        dict(kwdefaults) if kwdefaults else None,
    )


@functools.lru_cache(maxsize=256)
def _factory(params: str, call: str, args: str, kwargs: str) -> Callable[..., Any]:
    """A function making ``local_now`` wrappers of this shape (compiled once per shape)."""
    p = _PREFIX
    source = (
        f"def {p}make({p}node, {p}bound, {p}current, {p}refuse, {p}hide):\n"
        f"    def local_now({params}):\n"
        f"        if {p}node._local_now_blocked:\n"
        f"            {p}refuse()\n"
        f"        if {p}current() is None:\n"
        f"            return {p}bound({call})\n"
        f"        return {p}hide(None, {p}bound, {args}, {kwargs})\n"
        f"    return local_now\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<replobj local_now({params})>", "exec"), namespace)
    factory: Callable[..., Any] = namespace[f"{p}make"]
    return factory
