"""A peer that is not up yet is logged once, not at every retry; again once it was up."""

from __future__ import annotations

import logging

import pytest
from transport_helpers import SECRET, resend_until_received, wait_until

from replobj.raft.messages import TimeoutNow
from replobj.transport.tcp import TcpTransport

pytestmark = pytest.mark.anyio


def _records(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and text in r.getMessage()]


async def test_an_absent_peer_is_warned_about_once_per_outage(
    ports: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="replobj.transport")
    pa, pb, _ = ports
    book_a = {"b": ("127.0.0.1", pb)}
    book_b = {"a": ("127.0.0.1", pa)}
    a = TcpTransport("a", ("127.0.0.1", pa), book_a, secret=SECRET, seed=1, backoff=(0.01, 0.05))
    async with a:
        a.send("b", TimeoutNow(1, "a"))  # opens the link; b is not listening
        await wait_until(  # about a second of retries (backoff at most 50 ms)
            lambda: len(_records(caplog, logging.DEBUG, "cannot reach 'b'")) >= 15,
            "fifteen quiet retries",
        )
        warnings = _records(caplog, logging.WARNING, "cannot reach 'b'")
        assert len(warnings) == 1, caplog.text
        assert "retrying quietly until it answers" in warnings[0]
        assert a.stats.last_error.startswith("cannot reach 'b'")

        async with TcpTransport("b", ("127.0.0.1", pb), book_b, secret=SECRET, seed=2) as b:
            await resend_until_received(a, "b", b, TimeoutNow(1, "a"))
            await wait_until(
                lambda: bool(_records(caplog, logging.INFO, "link to 'b' is up")), "link up line"
            )
        assert len(_records(caplog, logging.INFO, "link to 'b' is up")) == 1, caplog.text

        # b is gone again: a new outage gets one new warning, then quiet again.
        await wait_until(
            lambda: len(_records(caplog, logging.WARNING, "cannot reach 'b'")) == 2,
            "the second outage's warning",
        )
        quiet = len(_records(caplog, logging.DEBUG, "cannot reach 'b'"))
        await wait_until(
            lambda: len(_records(caplog, logging.DEBUG, "cannot reach 'b'")) >= quiet + 5,
            "five more quiet retries",
        )
        assert len(_records(caplog, logging.WARNING, "cannot reach 'b'")) == 2, caplog.text
