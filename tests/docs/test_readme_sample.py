"""The README's code sample runs as written: pasted into a file, it starts a cluster."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def readme_sample() -> str:
    """The first Python block of README.md (between the title and "## Quick start")."""
    text = (ROOT / "README.md").read_text()
    intro = text[: text.index("## Quick start")]
    start = intro.index("```python\n") + len("```python\n")
    return intro[start : intro.index("```\n", start)]


def test_readme_sample_runs(tmp_path: pathlib.Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(readme_sample())
    env = dict(os.environ)
    env.pop("REPLOBJ_SECRET", None)  # the sample's stated fallback: a fresh secret
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "backends" / "rocksdb")])
    done = subprocess.run(
        [sys.executable, str(sample)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    context = f"sample in {sample}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, context
    lines = done.stdout.splitlines()
    assert lines[:3] == ["5", "5", "5"], context  # the command, a linearizable and a local read
    status = lines[3:]  # the status printed last: d joined, c left
    assert "member      a" in status, context
    assert "voters      a, b, d" in status, context
