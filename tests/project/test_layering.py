"""The one layering rule of ``proxy/``, checked on every module's imports.

- The pure layers (``policy/``, ``diagnosis/``, ``export/``, ``inspector/``, the config
  model and lint, the log record, ``errors``) import only the standard library's pure
  modules and each other.
- ``config/loader.py`` is the one YAML reader; ``log/sink.py`` writes a stream.
- Only ``http/`` and the wiring on top (``server``, ``forward``, ``generation``, ``cli``)
  do network I/O, and nothing but those imports ``http/``.
- ``devserver/`` runs the dev server as a child process (processes and signals, no
  network, no third-party package); the demo (``demo/``) is wiring, and its Flask app
  runs in the child.

Every module must fall under one layer below, so a new module is placed on purpose.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest

from tests.support import ROOT

PROXY = ROOT / "proxy"

PURE = ("proxy.errors", "proxy.policy", "proxy.diagnosis", "proxy.config.model",
        "proxy.config.lint", "proxy.log.record", "proxy.export", "proxy.inspector")  # fmt: skip
# Standard-library modules that do I/O or run things: never in a pure module.
IO_STDLIB = frozenset(
    {"asyncio", "socket", "ssl", "selectors", "signal", "subprocess", "threading",
     "multiprocessing", "os", "shutil", "tempfile", "http", "urllib.request", "logging"}
)  # fmt: skip


@dataclass(frozen=True)
class Layer:
    name: str
    proxy: tuple[str, ...]  # proxy modules it may import (prefixes); () = any
    third_party: tuple[str, ...] | None  # None = any
    io: bool  # may import IO_STDLIB


LAYERS: list[tuple[str, Layer]] = [  # first matching glob wins
    ("proxy/config/loader.py", Layer("config loader", PURE, ("yaml",), io=True)),
    ("proxy/log/sink.py", Layer("log sink", PURE, (), io=True)),
    ("proxy/http/*", Layer("http", (*PURE, "proxy.http", "proxy.log.sink"), None, io=True)),
    (
        "proxy/devserver/*",
        Layer("devserver", (*PURE, "proxy.devserver", "proxy.log.sink"), (), io=True),
    ),
    # The demo's Flask app runs in the child, never imported by the proxy.
    ("proxy/demo/app.py", Layer("demo app", ("proxy.demo.app",), ("flask", "werkzeug"), io=True)),
    ("proxy/demo/*", Layer("demo", (), None, io=True)),
    ("proxy/policy/*", Layer("policy", PURE, (), io=False)),
    ("proxy/diagnosis/*", Layer("diagnosis", PURE, (), io=False)),
    ("proxy/config/*", Layer("config model", PURE, (), io=False)),
    ("proxy/log/*", Layer("log record", PURE, (), io=False)),
    ("proxy/export/*", Layer("export", PURE, (), io=False)),
    ("proxy/inspector/*", Layer("inspector", PURE, (), io=False)),
    ("proxy/errors.py", Layer("errors", PURE, (), io=False)),
    ("proxy/*.py", Layer("wiring", (), None, io=True)),
]


def layer_of(path: Path) -> Layer:
    rel = path.relative_to(ROOT).as_posix()
    for pattern, layer in LAYERS:
        if fnmatch(rel, pattern):
            return layer
    raise AssertionError(f"{rel} is in no layer: add it to LAYERS in {Path(__file__).name}")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[str]:
    """Absolute names of everything ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.extend(f"{base}.{alias.name}" for alias in node.names)
    return found


MODULES = sorted(PROXY.rglob("*.py"))


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_imports_follow_the_layers(path: Path) -> None:
    layer = layer_of(path)
    wrong = []
    for name in imports(path):
        top = name.split(".")[0]
        if top == "__future__":
            continue
        if top == "proxy":
            if name in ("proxy.__version__",):
                continue
            if layer.proxy and not _under(name, layer.proxy):
                wrong.append(f"{name} (a {layer.name} module may import only {layer.proxy})")
        elif top in sys.stdlib_module_names:
            if not layer.io and (top in IO_STDLIB or _under(name, tuple(IO_STDLIB))):
                wrong.append(f"{name} (I/O in a pure {layer.name} module)")
        elif layer.third_party is not None and top not in layer.third_party:
            wrong.append(f"{name} (third-party in a {layer.name} module)")
    assert not wrong, f"{path.relative_to(ROOT)} imports " + "; ".join(wrong)


def test_only_the_wiring_and_http_import_http() -> None:
    for path in MODULES:
        layer = layer_of(path)
        if layer.name in ("http", "wiring"):
            continue
        assert not any(_under(n, ("proxy.http",)) for n in imports(path)), path


def test_only_the_loader_reads_yaml() -> None:
    readers = {
        module_name(p) for p in MODULES if any(n.split(".")[0] == "yaml" for n in imports(p))
    }
    assert readers == {"proxy.config.loader"}


def test_every_subpackage_says_what_it_may_import() -> None:
    for init in PROXY.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init.relative_to(ROOT)} needs a docstring"
        assert "import" in doc.lower(), f"{init.relative_to(ROOT)}: say what it may import"


def test_no_bare_create_task() -> None:
    """Tasks held only by the loop can be garbage-collected mid-flight."""
    for path in MODULES:
        assert "create_task(" not in path.read_text(encoding="utf-8"), path.name


def test_tests_share_helpers_not_test_modules() -> None:
    """Shared test code lives in support modules; a test module never imports another
    test module or a conftest."""
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for name in imports(path):
            leaf = [part for part in name.split(".") if part.startswith(("test_", "conftest"))]
            assert not (name.startswith("tests.") and leaf), f"{path.relative_to(ROOT)}: {name}"
