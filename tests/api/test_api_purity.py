"""The API layer is pure: no anyio, no sockets, no clocks; stdlib, cloudpickle and replobj."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import replobj

PACKAGE = Path(replobj.__file__).parent
MODULES = [
    "replicated",
    "command",
    "statemachine",
    "sessions",
    "entry_context",
    "object_state",
    "pickling",
    "snapshot_format",
]
FORBIDDEN = {"time", "socket", "asyncio", "threading", "os", "random", "datetime"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


SEEDED_RANDOM = {"entry_context"}
"""Modules that may import ``random``, only to build a generator seeded from the entry."""


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_only_pure_things(module: str) -> None:
    imported = _imports(PACKAGE / f"{module}.py")
    outside = {n for n in imported if n not in sys.stdlib_module_names} - {"cloudpickle"}
    assert not outside, f"{module}.py imports {sorted(outside)}"
    forbidden = FORBIDDEN - {"random"} if module in SEEDED_RANDOM else FORBIDDEN
    assert not imported & forbidden, f"{module}.py imports {sorted(imported & forbidden)}"


@pytest.mark.parametrize("module", sorted(SEEDED_RANDOM))
def test_random_is_only_used_as_a_generator_with_an_explicit_seed(module: str) -> None:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    uses = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "random"
    ]
    assert uses, f"{module}.py no longer uses random: drop it from SEEDED_RANDOM"
    assert {use.attr for use in uses} == {"Random"}
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and node.func in uses]
    assert calls
    assert all(len(call.args) == 1 for call in calls), "random.Random() needs its seed"
