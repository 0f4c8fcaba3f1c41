"""The pure core imports neither aiohttp nor yaml (STYLE §2.3); ruff's TID251 says the same."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROXY = Path(__file__).resolve().parent.parent / "proxy"
PURE = [
    "bounded",
    "origins",
    "cors",
    "headers",
    "logfmt",
    "errors",
    "werkzeug_tb",
    "diagnostics",
    "verdict",
    "cookies",
    "hints",
    "lint",
    "reach",
]
BANNED = {"aiohttp", "yaml", "socket", "asyncio", "multidict", "yarl"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_do_no_io(module: str) -> None:
    path = PROXY / f"{module}.py"
    assert path.exists(), f"pure module {module} is missing"
    assert not imports(path) & BANNED


def test_only_config_reads_yaml() -> None:
    readers = {p.stem for p in PROXY.glob("*.py") if "yaml" in imports(p)}
    assert readers == {"config"}


def test_no_bare_create_task() -> None:
    """Tasks held only by the loop can be garbage-collected mid-flight."""
    for path in PROXY.glob("*.py"):
        assert "create_task(" not in path.read_text(encoding="utf-8"), path.name
