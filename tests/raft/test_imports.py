"""The Raft core stays pure: standard library and its own modules only (issue 2, scope 2)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import replobj.raft

RAFT_DIR = Path(replobj.raft.__file__).parent
MODULES = sorted(RAFT_DIR.glob("*.py"))


def imported_modules(source: str) -> list[tuple[int, str]]:
    """Every module a source file imports: ``(line, dotted name)``; relative ones start with '.'."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, "." * node.level + (node.module or "")))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) in {"__import__"}
        ):
            found.append((node.lineno, "<dynamic __import__>"))
    return found


def is_allowed(name: str) -> bool:
    """Relative imports within the package, ``replobj.raft.*``, or a standard library module."""
    if name.startswith("."):
        return not name.startswith("..")
    if name == "replobj.raft" or name.startswith("replobj.raft."):
        return True
    return name.split(".")[0] in sys.stdlib_module_names


def test_raft_package_has_modules() -> None:
    assert len(MODULES) >= 5, f"expected the core's modules in {RAFT_DIR}, found {MODULES}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_raft_module_imports_only_stdlib_and_raft(path: Path) -> None:
    bad = [
        f"{path.name}:{line}: {name}"
        for line, name in imported_modules(path.read_text())
        if not is_allowed(name)
    ]
    assert not bad, "replobj/raft must import only the standard library:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("import json", True),
        ("from collections.abc import Sequence", True),
        ("from .types import Entry", True),
        ("from replobj.raft.types import Entry", True),
        ("import anyio", False),
        ("from replobj.runtime import Runtime", False),
        ("from ..errors import ReplObjError", False),
        ("import msgspec.json", False),
        ("__import__('anyio')", False),
    ],
)
def test_import_checker_can_fail(source: str, allowed: bool) -> None:
    names = [name for _, name in imported_modules(source)]
    assert names
    assert all(is_allowed(n) for n in names) is allowed
