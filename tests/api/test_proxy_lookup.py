"""``proxy.method`` is a plain attribute after its first use (``ObjectProxy``).

``__getattr__`` only runs after a failed attribute lookup, which costs about a
microsecond: more than a local read. The proxy keeps each method's proxy in its instance
``__dict__``, so ``kv.get.local_now(...)`` written inline costs little more than with
``kv.get`` bound once. Unknown names still raise, and the proxy stays read-only.
"""

from __future__ import annotations

import pytest

import replobj
from replobj import errors
from replobj.proxy import CommandMethod, QueryMethod


@replobj.replicated(name="tests.proxy_lookup.KV")
class KV:
    """A dict with one command and one query."""

    def __init__(self) -> None:
        self.data: dict[str, int] = {}

    def set(self, key: str, value: int) -> None:
        """Store ``value``."""
        self.data[key] = value

    @replobj.query
    def get(self, key: str) -> int | None:
        """The value under ``key``."""
        return self.data.get(key)


def _proxy() -> object:
    node = replobj.Node("p", listen="127.0.0.1:1", secret=replobj.new_secret())
    proxy: object = node.attach("kv", KV())
    return proxy


def test_a_method_proxy_is_made_once_then_found_as_a_plain_attribute() -> None:
    kv = _proxy()
    assert vars(kv) == {}
    get, put = kv.get, kv.set  # type: ignore[attr-defined]
    assert isinstance(get, QueryMethod)
    assert isinstance(put, CommandMethod)
    assert vars(kv) == {"get": get, "set": put}
    assert kv.get is get  # type: ignore[attr-defined]
    assert kv.set is put  # type: ignore[attr-defined]


def test_unknown_names_still_raise_and_the_proxy_stays_read_only() -> None:
    kv = _proxy()
    with pytest.raises(errors.UnknownMethodError, match=r"no command or query 'nope'"):
        kv.nope  # type: ignore[attr-defined]  # noqa: B018
    assert getattr(kv, "__deepcopy__", None) is None
    assert "nope" not in vars(kv)
    with pytest.raises(AttributeError, match=r"cannot set 'get' on the proxy of 'kv'"):
        kv.get = None  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match=r"cannot set 'extra'"):
        kv.extra = 1  # type: ignore[attr-defined]
    assert isinstance(kv.get, QueryMethod)  # type: ignore[attr-defined]
