"""Ctrl-C on a member run under ``replobj.run``: it hands leadership over, prints one line
and exits 130, instead of a traceback through the event loop in every process."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cluster_helpers import free_port

import replobj
from replobj.running import INTERRUPTED_EXIT_STATUS

MEMBER = Path(__file__).with_name("interrupted_member.py")
ROOT = Path(__file__).resolve().parents[2]


class Member:
    """One member process; its stdout lines arrive on a queue (read with deadlines)."""

    def __init__(self, me: str, addresses: dict[str, str], data: Path, env: dict[str, str]):
        self.me = me
        self.process = subprocess.Popen(
            [sys.executable, str(MEMBER), me, json.dumps(addresses), str(data / me)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        stdout = self.process.stdout
        threading.Thread(target=self._read, args=(stdout,), daemon=True).start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.put(line.strip())

    def wait_for_leader(self, within: float, *, other_than: tuple[str | None, ...] = ()) -> str:
        """The next leader this member announces that is not in ``other_than``."""
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            leader = line.removeprefix("leader ")
            if leader not in ("None", *other_than):
                return leader
        raise AssertionError(f"{self.me} announced no new leader within {within}s")

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C; its exit status and the stderr it left once it exited (within 10 s)."""
        self.process.send_signal(signal.SIGINT)
        _, stderr = self.process.communicate(timeout=10)
        return self.process.returncode, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def test_ctrl_c_hands_leadership_over_and_prints_one_line(tmp_path: Path) -> None:
    addresses = {me: f"127.0.0.1:{free_port()}" for me in ("a", "b", "c")}
    print(f"addresses {addresses}, data under {tmp_path}")
    env = dict(os.environ, REPLOBJ_SECRET=replobj.new_secret())
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "backends" / "rocksdb")])
    members = {me: Member(me, addresses, tmp_path, env) for me in addresses}
    try:
        leaders = {member.wait_for_leader(20) for member in members.values()}
        assert len(leaders) == 1, leaders
        (leader,) = leaders
        survivor = next(m for me, m in members.items() if me != leader)

        started = time.monotonic()
        outcomes = {leader: members[leader].interrupt()}
        # A handed-over leadership is known at once; an election would first wait out an
        # election timeout (2 s) without heartbeats.
        within = 1.5 - (time.monotonic() - started)
        assert survivor.wait_for_leader(within, other_than=(leader,)) != leader
        for me, member in members.items():
            if me != leader:
                outcomes[me] = member.interrupt()
        for me, (status, text) in outcomes.items():
            lines = text.splitlines()
            print(f"{me} exited {status}, stderr: {lines}")
            assert status == INTERRUPTED_EXIT_STATUS == 130
            assert "Traceback" not in text
            assert lines[-1] == f"interrupted: stopped {me}"
            assert [line for line in lines if "cannot reach" not in line] == [lines[-1]]
    finally:
        for member in members.values():
            member.kill()


def test_run_returns_what_main_returns() -> None:
    async def main(x: int) -> int:
        return x + 1

    assert replobj.run(main, 41) == 42


def test_an_error_of_main_leaves_run_as_itself() -> None:
    mistake = KeyError("not there")

    async def main() -> None:
        raise mistake

    with pytest.raises(KeyError) as raised:
        replobj.run(main)
    assert raised.value is mistake
