"""HistoryRecorder: settling calls, the context-manager form and use from async code."""

from __future__ import annotations

import itertools
import random

import anyio
import pytest

from replobj.errors import ReplObjError
from replobj.testing import (
    UNKNOWN,
    CounterModel,
    HistoryError,
    HistoryRecorder,
    Operation,
    RegisterModel,
    check_history,
)


def fake_clock() -> itertools.count[int]:
    return itertools.count(0, 10)


def test_ok_unknown_and_fail_build_the_history() -> None:
    recorder = HistoryRecorder(fake_clock().__next__)
    write = recorder.invoke(0, "write", 1)
    lost = recorder.invoke(1, "write", 2)
    refused = recorder.invoke(2, "write", 3)
    read = recorder.invoke(3, "read")
    assert recorder.ok(write) == Operation(0, 0, 40, "write", 1, None)
    assert recorder.unknown(lost) == Operation(1, 10, None, "write", 2, UNKNOWN)
    recorder.fail(refused)
    recorder.ok(read, 2)
    history = recorder.history()
    assert [o.input for o in history] == [1, 2, None]
    assert history[2] == Operation(3, 30, 50, "read", None, 2)
    assert check_history(history, RegisterModel()).ok


def test_a_call_settles_exactly_once() -> None:
    recorder = HistoryRecorder(fake_clock().__next__)
    token = recorder.invoke(0, "read")
    recorder.ok(token, None)
    with pytest.raises(HistoryError, match="already settled"):
        recorder.unknown(token)
    with pytest.raises(HistoryError, match="already settled"):
        recorder.fail(token)


def test_calls_still_in_flight_count_as_unknown() -> None:
    recorder = HistoryRecorder(fake_clock().__next__)
    recorder.invoke(0, "write", 1)
    (pending,) = recorder.history()
    assert not pending.outcome_known
    assert pending.output is UNKNOWN


def test_operations_validate_their_times() -> None:
    with pytest.raises(HistoryError, match="before it was invoked"):
        Operation(0, 10, 5, "read")
    with pytest.raises(HistoryError, match="exactly when its output is UNKNOWN"):
        Operation(0, 10, None, "read", None, 3)


class Refused(ReplObjError):
    """Stands for an error that proves the call did not happen."""


def test_call_context_manager_classifies_the_ending() -> None:
    recorder = HistoryRecorder(fake_clock().__next__)
    with recorder.call(0, "incr") as call:
        call.returned(1)
    with pytest.raises(Refused), recorder.call(1, "incr"):
        raise Refused
    with pytest.raises(TimeoutError), recorder.call(2, "incr", definite_failures=(Refused,)):
        raise TimeoutError
    with recorder.call(3, "incr", definite_failures=(Refused,)):
        pass
    with pytest.raises(Refused), recorder.call(4, "incr", definite_failures=(Refused,)):
        raise Refused
    history = recorder.history()
    assert [(o.client, o.outcome_known) for o in history] == [
        (0, True),
        (1, False),
        (2, False),
        (3, False),
    ]
    assert history[0].output == 1
    assert check_history(history, CounterModel()).ok


class AsyncRegister:
    """An atomic in-memory register whose calls yield to other tasks around the effect."""

    def __init__(self, seed: int) -> None:
        self.value: int | None = None
        self.rng = random.Random(seed)

    async def write(self, value: int) -> None:
        await self._delay()
        self.value = value
        await self._delay()

    async def read(self) -> int | None:
        await self._delay()
        value = self.value
        await self._delay()
        return value

    async def _delay(self) -> None:
        for _ in range(self.rng.randint(0, 3)):
            await anyio.lowlevel.checkpoint()


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_recording_concurrent_async_clients() -> None:
    seed = 7
    print(f"seed {seed}")
    register = AsyncRegister(seed)
    ticks = itertools.count()
    recorder = HistoryRecorder(ticks.__next__)
    rng = random.Random(seed)

    async def client(client_id: int) -> None:
        for step in range(30):
            if rng.random() < 0.5:
                with recorder.call(client_id, "write", client_id * 100 + step) as call:
                    await register.write(client_id * 100 + step)
                    call.returned(None)
            else:
                with recorder.call(client_id, "read") as call:
                    call.returned(await register.read())

    async with anyio.create_task_group() as tasks:
        for client_id in range(5):
            tasks.start_soon(client, client_id)
    history = recorder.history()
    assert len(history) == 150
    verdict = check_history(history, RegisterModel())
    assert verdict.ok, verdict.explain()


@pytest.mark.anyio
async def test_a_register_that_serves_stale_reads_is_caught() -> None:
    register = AsyncRegister(3)
    recorder = HistoryRecorder(itertools.count().__next__)
    cached: list[int | None] = [None]

    async def stale_read() -> int | None:
        value = cached[0]
        cached[0] = await register.read()
        return value

    for value in range(3):
        with recorder.call(0, "write", value) as call:
            await register.write(value)
            call.returned(None)
        with recorder.call(1, "read") as call:
            call.returned(await stale_read())
    verdict = check_history(recorder.history(), RegisterModel())
    assert not verdict.ok
    assert "client 1: read() -> None" in verdict.explain()
