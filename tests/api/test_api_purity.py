"""The API layer is pure: no anyio, no sockets, no clocks; stdlib, cloudpickle and replobj."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import replobj

PACKAGE = Path(replobj.__file__).parent
MODULES = ["replicated", "command", "statemachine", "sessions", "entry_context"]
FORBIDDEN = {"time", "socket", "asyncio", "threading", "os", "random", "datetime"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_only_pure_things(module: str) -> None:
    imported = _imports(PACKAGE / f"{module}.py")
    outside = {n for n in imported if n not in sys.stdlib_module_names} - {"cloudpickle"}
    assert not outside, f"{module}.py imports {sorted(outside)}"
    assert not imported & FORBIDDEN, f"{module}.py imports {sorted(imported & FORBIDDEN)}"
