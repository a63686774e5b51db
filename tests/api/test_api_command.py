"""Command payloads: round trips, the cloudpickle fallback, and what cannot be sent."""

from __future__ import annotations

import pickle
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import replobj
from replobj.command import (
    BATCH_TAG,
    COMMAND_TAG,
    Command,
    CommandOutcome,
    decode_command,
    decode_commands,
    encode_batch,
    encode_command,
    new_client_id,
    stamp_command,
)
from replobj.errors import CorruptCommandError, ReplObjError, UnpicklableArgumentError

from .objects import CLIENT_A, KV, call


def test_round_trip_keeps_every_field() -> None:
    cmd = call("kv", "set", "x", [1, {"a": b"b"}], seq=7, cls=KV, at=123.5, lowest_pending=3)
    payload = encode_command(cmd)
    assert payload[0] == COMMAND_TAG
    assert decode_command(payload) == cmd
    assert decode_commands(payload) == (cmd,)


def test_lowest_pending_defaults_to_seq() -> None:
    assert call("kv", "set", seq=4, cls=KV).lowest_pending == 4


def test_stamp_replaces_the_timestamp_only() -> None:
    cmd = call("kv", "set", "x", 1, seq=1, cls=KV)
    stamped = stamp_command(encode_command(cmd), 1_700_000_000.25)
    assert decode_command(stamped) == cmd.with_timestamp(1_700_000_000.25)
    with pytest.raises(ValueError, match="finite"):
        stamp_command(stamped, float("nan"))


def test_batch_round_trip_shares_the_timestamp() -> None:
    commands = [call("kv", "set", str(i), i, seq=i, cls=KV, at=5.0) for i in range(1, 4)]
    payload = encode_batch(commands)
    assert payload[0] == BATCH_TAG
    assert decode_commands(stamp_command(payload, 9.0)) == tuple(
        c.with_timestamp(9.0) for c in commands
    )
    with pytest.raises(CorruptCommandError, match="batch of 3"):
        decode_command(payload)
    with pytest.raises(ValueError, match="share one timestamp"):
        encode_batch([commands[0], commands[1].with_timestamp(1.0)])
    with pytest.raises(ValueError, match="at least one"):
        encode_batch([])


def test_lambda_argument_falls_back_to_cloudpickle() -> None:
    offset = 41
    cmd = call("kv", "call", "x", lambda old: (old or 0) + offset + 1, seq=1, cls=KV)
    payload = encode_command(cmd)
    with pytest.raises(Exception):  # noqa: B017 - plain pickle really cannot do it
        pickle.dumps(cmd.args[1])
    decoded = decode_command(payload)
    assert decoded.args[1](None) == 42


def _generator() -> Iterator[int]:
    yield 1


@pytest.mark.parametrize(
    ("args", "kwargs", "needle"),
    [
        (("x", threading.Lock()), {}, "argument 1 (lock)"),
        (("x",), {"value": _generator()}, "argument 'value' (generator)"),
    ],
)
def test_unpicklable_argument_is_named(
    args: tuple[Any, ...], kwargs: dict[str, Any], needle: str
) -> None:
    cmd = call("kv", "set", *args, seq=1, cls=KV, **kwargs)
    with pytest.raises(UnpicklableArgumentError) as info:
        encode_command(cmd)
    message = str(info.value)
    assert "kv.set()" in message
    assert needle in message
    assert isinstance(info.value, ReplObjError)
    assert isinstance(info.value, TypeError)


def test_unpicklable_argument_in_a_batch_is_named() -> None:
    good = call("kv", "set", "a", 1, seq=1, cls=KV)
    bad = call("kv", "call", "b", threading.Lock(), seq=2, cls=KV)
    with pytest.raises(UnpicklableArgumentError, match=r"kv\.call\(\): argument 1"):
        encode_batch([good, bad])


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x01",
        b"\x07" + bytes(20),
        b"\x01" + struct.pack(">d", 0.0) + b"not a pickle",
        b"\x01" + struct.pack(">d", 0.0) + pickle.dumps(("too", "short")),
        b"\x01" + struct.pack(">d", 0.0) + pickle.dumps((b"short", 1, 1, "kv", "K", "m", (), {})),
        b"\x02" + struct.pack(">d", 0.0) + pickle.dumps(()),
        b"\x01" + struct.pack(">d", 0.0) + b"\x80\x05cno_such_module\nThing\n.",
    ],
)
def test_garbage_is_a_corrupt_command(payload: bytes) -> None:
    with pytest.raises(CorruptCommandError):
        decode_commands(payload)


def test_constructor_validates_fields() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Command(b"short", 1, "kv", "K", "set")
    with pytest.raises(ValueError, match="seq starts at 1"):
        Command(CLIENT_A, 0, "kv", "K", "set")
    with pytest.raises(ValueError, match="lowest_pending"):
        Command(CLIENT_A, 2, "kv", "K", "set", lowest_pending=3)
    with pytest.raises(ValueError, match="private method"):
        Command(CLIENT_A, 1, "kv", "K", "_hidden")
    with pytest.raises(TypeError, match="non-empty str"):
        Command(CLIENT_A, 1, "", "K", "set")
    with pytest.raises(TypeError, match="args must be a tuple"):
        Command(CLIENT_A, 1, "kv", "K", "set", ["x"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        Command(CLIENT_A, 1, "kv", "K", "set", timestamp=float("inf"))


def test_client_ids_are_random_16_bytes() -> None:
    ids = {new_client_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 16 for i in ids)


def test_outcome_result_returns_or_raises() -> None:
    assert CommandOutcome(CLIENT_A, 1, value=3).result() == 3
    with pytest.raises(KeyError, match="boom"):
        CommandOutcome(CLIENT_A, 1, error=KeyError("boom")).result()


def test_bool_is_not_a_sequence_number() -> None:
    with pytest.raises(TypeError, match="must be ints"):
        Command(CLIENT_A, True, "kv", "K", "set")


def test_a_trusted_command_equals_a_checked_one() -> None:
    client = new_client_id()
    checked = Command(client, 7, "kv", "app.KV", "set", ("k", 1), {"ttl": 2}, lowest_pending=3)
    trusted = Command.trusted(client, 7, ("kv", "app.KV", "set"), ("k", 1), {"ttl": 2}, 3)
    assert trusted == checked
    assert trusted.fields() == checked.fields()
    assert encode_command(trusted) == encode_command(checked)


def test_a_node_checks_a_methods_names_with_its_first_command() -> None:
    node = replobj.Node("a", secret=replobj.new_secret(), listen="127.0.0.1:7001")
    with pytest.raises(ValueError, match="private method"):
        node.new_command("kv", "app.KV", "_hidden", (), {})
    with pytest.raises(ValueError, match="private method"):
        node.new_command("kv", "app.KV", "_hidden", (), {})  # not remembered as checked
    first, _ = node.new_command("kv", "app.KV", "set", ("k",), {})
    second, _ = node.new_command("kv", "app.KV", "set", ("k",), {})
    assert (first.seq, second.seq) == (first.seq, first.seq + 1)
    assert second == Command(
        first.client_id,
        second.seq,
        "kv",
        "app.KV",
        "set",
        ("k",),
        {},
        lowest_pending=second.lowest_pending,
    )
