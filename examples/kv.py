"""A replicated key-value store on a 3-process cluster: ``python examples/kv.py``.

Three members run as OS processes on 127.0.0.1 (this file run with ``member ...``),
each with a :class:`KeyValueStore` attached. The parent writes through one member and
reads through another (linearizable reads see every acknowledged write; local reads
may lag), shows that a failing command raises the same error on every replica and
leaves the state alone, then kills the leader and shows that the data survived on the
new one. It exits 0 if everything held.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import replobj
from replobj.demo import MemberError, ProcessCluster, check, run_scenario, say, serve_member


@replobj.replicated(name="examples.KeyValueStore")
class KeyValueStore:
    """A dict whose writes go through the replicated log."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def put(self, key: str, value: Any) -> Any:
        """Set ``key``; returns the previous value or ``None``."""
        previous = self.data.get(key)
        self.data[key] = value
        return previous

    def delete(self, key: str) -> bool:
        """Remove ``key``; returns whether it was there."""
        return self.data.pop(key, None) is not None

    def rename(self, old: str, new: str) -> None:
        """Move ``old`` to ``new``; raises ``KeyError`` (on every replica) if ``old`` is missing."""
        self.data[new] = self.data.pop(old)

    @replobj.query
    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` or ``default``."""
        return self.data.get(key, default)

    @replobj.query
    def keys(self) -> list[str]:
        """Every key, sorted."""
        return sorted(self.data)


PROGRAM = [sys.executable, str(Path(__file__).resolve()), "member"]


async def scenario(cluster: ProcessCluster) -> None:
    """Write here, read there, fail a command, kill the leader, read again."""
    say("starting members a, b, c")
    await cluster.start(["a", "b", "c"])
    leader = await cluster.wait_for_leader()
    say(f"leader: {leader}")
    a, b, c = (cluster.members[node] for node in ("a", "b", "c"))

    say("writing through a, reading through b and c")
    await a.call("kv", "put", "colour", "blue")
    await a.call("kv", "put", "shape", "circle")
    previous = await a.call("kv", "put", "colour", "green")
    check(previous == "blue", f"put returned the previous value {previous!r}")
    check(await b.read("kv", "get", "colour") == "green", "b reads colour == 'green'")
    check(await c.read("kv", "keys") == ["colour", "shape"], "c sees both keys")

    say("a command that raises: rename('missing', 'x')")
    try:
        await b.call("kv", "rename", "missing", "x")
    except MemberError as exc:
        check(exc.kind == "KeyError", f"the caller got {exc.kind} back")
    else:
        check(False, "rename of a missing key raised")
    keys = [await member.read("kv", "keys") for member in (a, b, c)]
    check(all(k == ["colour", "shape"] for k in keys), "no replica changed")

    say(f"kill -9 the leader {leader}")
    await cluster.kill(leader)
    survivors = sorted(cluster.members)
    new_leader = await cluster.wait_for_leader(among=survivors, newer_than=leader)
    say(f"new leader: {new_leader}")
    for node in survivors:
        colour = await cluster.members[node].read("kv", "get", "colour")
        check(colour == "green", f"{node} still reads colour == 'green'")
    deleted = await cluster.members[survivors[0]].call("kv", "delete", "shape")
    check(deleted, f"delete('shape') through {survivors[0]} worked without {leader}")


def main() -> int:
    """Run the example (or, with ``member ...``, one member of it)."""
    if sys.argv[1:2] == ["member"]:
        return serve_member({"kv": KeyValueStore}, sys.argv[2:])
    return run_scenario(scenario, PROGRAM, title="replicated key-value store on 3 processes")


if __name__ == "__main__":
    sys.exit(main())
