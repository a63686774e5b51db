"""Recorded client histories: what each client asked, when, and what it was told.

A history is a list of :class:`Operation` values, one per call, with the real time at which
the client invoked it and the real time at which the answer arrived. A call whose outcome the
client never learnt (a timeout, a crash, a lost connection) has no return time: it may have
taken effect at any moment after its invocation, or never. A call that definitely did not take
effect is simply left out of the history.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import ReplObjError

__all__ = [
    "UNKNOWN",
    "CallToken",
    "ClientId",
    "HistoryError",
    "HistoryRecorder",
    "Operation",
    "PendingCall",
    "Unknown",
]

ClientId = int | str
"""Who issued a call: any label that tells concurrent clients apart."""


class Unknown(enum.Enum):
    """Type of :data:`UNKNOWN`, the output of a call whose outcome is unknown."""

    UNKNOWN = "unknown"

    def __repr__(self) -> str:
        return "?"


UNKNOWN: Final = Unknown.UNKNOWN
"""The output of a call whose outcome is unknown (see :attr:`Operation.outcome_known`)."""


class HistoryError(ReplObjError, ValueError):
    """A history (or a use of :class:`HistoryRecorder`) is malformed; the message says where."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One call of one client, as the client saw it.

    :param client: the client that issued the call; a client issues one call at a time.
    :param call_time: when the call was invoked (any monotonic clock, in integer ticks).
    :param return_time: when the answer arrived, or ``None`` when the outcome is unknown
        (the call may take effect at any point after ``call_time``, or never).
    :param name: what the call does (``"read"``, ``"write"``, a method name...), for the model.
    :param input: the call's arguments, in whatever shape the model expects.
    :param output: what the call returned; :data:`UNKNOWN` when the outcome is unknown.
    :raises HistoryError: if the call returned before it was invoked, or an operation with a
        known outcome has no return time (or the reverse).
    """

    client: ClientId
    call_time: int
    return_time: int | None
    name: str
    input: Any = None
    output: Any = None

    def __post_init__(self) -> None:
        if self.return_time is not None and self.return_time < self.call_time:
            raise HistoryError(
                f"{self.name} of client {self.client!r} returned at {self.return_time}, before "
                f"it was invoked at {self.call_time}; record both times with the same clock"
            )
        if (self.return_time is None) != (self.output is UNKNOWN):
            raise HistoryError(
                f"{self.name} of client {self.client!r}: an operation has no return time "
                "exactly when its output is UNKNOWN; build it with HistoryRecorder.unknown()"
            )

    @property
    def outcome_known(self) -> bool:
        """Whether the client learnt the outcome (``False`` after a timeout or a crash)."""
        return self.return_time is not None

    def describe(self) -> str:
        """Render the call as ``client 3: write(5) -> None``."""
        arguments = "" if self.input is None else repr(self.input)
        return f"client {self.client}: {self.name}({arguments}) -> {self.output!r}"


@dataclass(frozen=True, slots=True)
class CallToken:
    """Handle returned by :meth:`HistoryRecorder.invoke`; pass it back to settle the call."""

    index: int


@dataclass(slots=True)
class PendingCall:
    """A call in flight inside :meth:`HistoryRecorder.call`; :meth:`returned` settles it.

    :param token: the recorder's handle of the call.
    """

    token: CallToken
    output: Any = field(default=None, init=False)
    has_returned: bool = field(default=False, init=False)

    def returned(self, output: Any) -> None:
        """Record what the call returned (the block then ends as a completed call)."""
        self.output = output
        self.has_returned = True


@dataclass(slots=True)
class _Invocation:
    client: ClientId
    call_time: int
    name: str
    input: Any
    settled: bool = False


class HistoryRecorder:
    """Collects a history from concurrent clients, for :func:`~replobj.testing.check_history`.

    Call :meth:`invoke` just before sending a request and exactly one of :meth:`ok`,
    :meth:`unknown` or :meth:`fail` when the answer (or its absence) is known. The recorder
    is meant for one event loop (asyncio or trio tasks); it takes no locks.

    :param clock: a monotonic clock returning integer ticks; defaults to
        :func:`time.monotonic_ns`. A fake clock makes histories reproducible in tests.
    """

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock = clock
        self._invocations: list[_Invocation] = []
        self._operations: dict[int, Operation] = {}

    def invoke(self, client: ClientId, name: str, input: Any = None) -> CallToken:
        """Note that ``client`` is about to make a call; returns the token that settles it.

        :param client: the calling client.
        :param name: the operation name the model understands.
        :param input: the call's arguments in the model's shape.
        """
        self._invocations.append(_Invocation(client, self._clock(), name, input))
        return CallToken(len(self._invocations) - 1)

    def ok(self, token: CallToken, output: Any = None) -> Operation:
        """The call returned ``output``: it took effect exactly once, between invoke and now.

        :raises HistoryError: if the token was already settled.
        """
        invocation = self._settle(token)
        operation = Operation(
            invocation.client,
            invocation.call_time,
            self._clock(),
            invocation.name,
            invocation.input,
            output,
        )
        self._operations[token.index] = operation
        return operation

    def unknown(self, token: CallToken) -> Operation:
        """The outcome is unknown (timeout, crash): it may take effect later, or never.

        :raises HistoryError: if the token was already settled.
        """
        invocation = self._settle(token)
        operation = Operation(
            invocation.client,
            invocation.call_time,
            None,
            invocation.name,
            invocation.input,
            UNKNOWN,
        )
        self._operations[token.index] = operation
        return operation

    def fail(self, token: CallToken) -> None:
        """The call definitely did not take effect (it was refused): leave it out.

        :raises HistoryError: if the token was already settled.
        """
        self._settle(token)

    @contextmanager
    def call(
        self,
        client: ClientId,
        name: str,
        input: Any = None,
        *,
        definite_failures: tuple[type[BaseException], ...] = (),
    ) -> Iterator[PendingCall]:
        """Record one call around a block; call :meth:`PendingCall.returned` inside it.

        A block that ends with ``returned(...)`` called records a completed call. An exception
        listed in ``definite_failures`` drops the call (it surely did not take effect); any other
        exception, or a block that ends without ``returned``, records an unknown outcome.
        Exceptions propagate.

        :param client: the calling client.
        :param name: the operation name the model understands.
        :param input: the call's arguments in the model's shape.
        :param definite_failures: exception types that prove the call did not take effect.
        """
        pending = PendingCall(self.invoke(client, name, input))
        try:
            yield pending
        except definite_failures:
            self.fail(pending.token)
            raise
        except BaseException:
            self.unknown(pending.token)
            raise
        if pending.has_returned:
            self.ok(pending.token, pending.output)
        else:
            self.unknown(pending.token)

    def history(self) -> list[Operation]:
        """The operations recorded so far, in invocation order.

        Calls still in flight are included with an unknown outcome: whatever they do later, the
        history stays truthful.
        """
        operations: list[Operation] = []
        for index, inv in enumerate(self._invocations):
            if not inv.settled:
                operations.append(
                    Operation(inv.client, inv.call_time, None, inv.name, inv.input, UNKNOWN)
                )
            elif index in self._operations:
                operations.append(self._operations[index])
        return operations

    def _settle(self, token: CallToken) -> _Invocation:
        if not 0 <= token.index < len(self._invocations):
            raise HistoryError(f"{token} was not issued by this recorder")
        invocation = self._invocations[token.index]
        if invocation.settled:
            raise HistoryError(
                f"{invocation.name} of client {invocation.client!r} was already settled; "
                "call exactly one of ok(), unknown() or fail() per invoke()"
            )
        invocation.settled = True
        return invocation
