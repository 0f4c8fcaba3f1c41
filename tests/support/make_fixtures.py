"""Regenerate tests/fixtures/: ``python -m tests.support.make_fixtures [--werkzeug-2.0 WHEEL]``.

The files freeze what real servers render, so the parser cannot silently depend on one
Werkzeug version:

- ``werkzeug-3-*.html`` and ``flask-generic-500.html``: a Flask app (``APP_SOURCE``,
  served as ``/srv/app/app.py``) behind the installed Werkzeug's ``DebuggedApplication``,
  or without debug mode, driven by ``werkzeug.test.Client``.
- ``werkzeug-3-truncated.html``: the NameError page cut after 4 KiB, as a proxy with a
  small capture limit would keep it. The frame list is cut too.
- ``werkzeug-2.0.html``: rendered by real Werkzeug 2.0.3 (module-qualified ``<h1>``,
  favicon comment in ``<head>``) when given its wheel (``pip download --no-deps
  werkzeug==2.0.3``); without it the committed file is kept.

Pages are normalised so regeneration gives stable diffs: the debugger ``SECRET`` and
object ids are replaced, and local install paths become ``/home/dev/api/.venv/...``.
"""

from __future__ import annotations

import argparse
import linecache
import re
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

from flask import Flask
from werkzeug.debug import DebuggedApplication
from werkzeug.debug.tbtools import DebugTraceback
from werkzeug.test import Client

from tests.support import FIXTURES

APP_FILE = "/srv/app/app.py"
VENV = "/home/dev/api/.venv/lib/python3.11"
APP_SOURCE = '''\
"""A small Flask app whose views fail the way real views do."""

from flask import Flask

app = Flask("fixture_app")
SETTINGS = {"greeting": "hello"}


@app.get("/")
def hello():
    greeting = SETTINGS["greeting"]
    return greeting + x


def load(key):
    return SETTINGS[key]


@app.get("/chained")
def outer():
    try:
        return load("missing")
    except KeyError as e:
        raise ValueError("config incomplete") from e
'''
# Where the fixture app fails; tests assert these.
HELLO_LINE = 12
OUTER_LINE = 24


def render(exc: BaseException) -> str:
    """The debugger page the installed Werkzeug renders for ``exc``."""
    return DebugTraceback(exc).render_debugger_html(evalex=False, secret="s", evalex_trusted=False)


def raising(source: str, filename: str, call: str) -> BaseException:
    """Run ``source`` as if it were ``filename`` and return what ``call`` raises.

    The source is registered with ``linecache`` so pages show its lines as for a file.
    """
    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, lines, filename)  # mtime None: kept
    namespace: dict[str, object] = {"__name__": "fixture"}
    exec(compile(source, filename, "exec"), namespace)
    try:
        exec(call, namespace)
    except Exception as exc:
        return exc
    raise AssertionError(f"{call} did not raise")


def fixture_app() -> Flask:
    linecache.cache[APP_FILE] = (len(APP_SOURCE), None, APP_SOURCE.splitlines(True), APP_FILE)
    namespace: dict[str, object] = {"__name__": "fixture_app"}
    exec(compile(APP_SOURCE, APP_FILE, "exec"), namespace)
    app = namespace["app"]
    assert isinstance(app, Flask)
    return app


def served(path: str, *, debug: bool) -> str:
    """The 500 page for ``path``: the debugger's, or Flask's generic one."""
    app = fixture_app()
    app.debug = debug  # re-raise to the debugger (Flask.handle_exception)
    app.logger.disabled = True  # the non-debug run logs the traceback; not wanted here
    wsgi = DebuggedApplication(app, evalex=False) if debug else app
    response = Client(wsgi).get(path, errors_stream=_Discard())
    assert response.status_code == 500, response.status
    return normalise(response.get_data(as_text=True))


class _Discard:
    """A ``wsgi.errors`` stream that drops the traceback the debugger prints."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def normalise(page: str) -> str:
    page = re.sub(r'SECRET = "[^"]*"', 'SECRET = "s"', page)
    page = re.sub(r"TRACEBACK = \d+", "TRACEBACK = 1", page)
    ids = iter(range(1, 1_000_000))
    page = re.sub(r'id="frame-\d+"', lambda _: f'id="frame-{next(ids)}"', page)
    for key in ("purelib", "platlib"):
        page = page.replace(sysconfig.get_paths()[key], f"{VENV}/site-packages")
    return page.replace(sysconfig.get_paths()["stdlib"], "/usr/lib/python3.11")


# Runs under Werkzeug 2.0.3 in a child process: a view reads a missing form field, as
# ``request.form["name"]`` does in Flask, behind 2.0.3's own DebuggedApplication.
_WERKZEUG_20 = """
import sys
from werkzeug.debug import DebuggedApplication
from werkzeug.exceptions import BadRequestKeyError
from werkzeug.test import Client
source = '''\\
from werkzeug.datastructures import MultiDict

def create_user(form):
    name = form["name"]
    return [name.encode()]

def app(environ, start_response):
    return create_user(MultiDict())
'''

ns = {}
exec(compile(source, "/home/dev/api/views.py", "exec"), ns)
BadRequestKeyError.show_exception = True  # what Flask sets in debug mode
class Discard:
    def write(self, text): return len(text)
    def flush(self): pass
body, status, headers = Client(DebuggedApplication(ns["app"], evalex=False)).get(
    "/", errors_stream=Discard())
sys.stdout.write(b"".join(body).decode())
"""


def render_werkzeug_20(wheel: Path) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "lib/python3.11/site-packages"
        zipfile.ZipFile(wheel).extractall(site)
        page = subprocess.run(
            [
                sys.executable,
                "-I",
                "-c",
                f"import sys; sys.path.insert(0, {str(site)!r})\n" + _WERKZEUG_20,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        page = normalise(page).replace(str(Path(tmp) / "lib/python3.11"), VENV)
    assert "// Werkzeug Debugger</title>" in page, page[:500]
    return page


def pages() -> dict[str, str]:
    plain = served("/", debug=True)
    return {
        "werkzeug-3-nameerror.html": plain,
        "werkzeug-3-chained.html": served("/chained", debug=True),
        "werkzeug-3-truncated.html": plain.encode()[:4096].decode(errors="ignore"),
        "flask-generic-500.html": served("/", debug=False),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--werkzeug-2.0", dest="wheel", type=Path, help="Werkzeug 2.0.3 wheel")
    args = parser.parse_args(argv)
    found = pages()
    if args.wheel:
        found["werkzeug-2.0.html"] = render_werkzeug_20(args.wheel)
    FIXTURES.mkdir(exist_ok=True)
    for name, text in found.items():
        (FIXTURES / name).write_text(text, encoding="utf-8", newline="")
        print("wrote", name)


if __name__ == "__main__":
    main()
