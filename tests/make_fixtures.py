"""Regenerate tests/fixtures/ from the installed Werkzeug: ``python -m tests.make_fixtures``.

The committed files freeze what today's Werkzeug renders, so the parser cannot silently
depend on one version; the Werkzeug 2.0-style page is written by hand after 2.0.3's layout.
"""

from __future__ import annotations

from pathlib import Path

from werkzeug.debug.tbtools import DebugTraceback
from werkzeug.exceptions import InternalServerError

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def render(exc: BaseException) -> str:
    return DebugTraceback(exc).render_debugger_html(evalex=False, secret="s", evalex_trusted=False)


def raising(source: str, filename: str, call: str) -> BaseException:
    namespace: dict[str, object] = {}
    exec(compile(source, filename, "exec"), namespace)
    try:
        exec(call, namespace)
    except Exception as exc:
        return exc
    raise AssertionError("did not raise")


APP = "from flask import Flask\n\napp = Flask(__name__)\n\n\n\n\n\n\n\n\n@app.get('/')\ndef hello():\n    return x\n"
CHAINED = (
    "def inner():\n    raise ValueError('bad value')\n\n"
    "def outer():\n    try:\n        inner()\n    except ValueError as e:\n        raise KeyError('missing') from e\n"
)


def pages() -> dict[str, str]:
    plain = raising(
        APP.replace(
            "from flask import Flask\n\napp = Flask(__name__)",
            "class app:\n    get = staticmethod(lambda p: (lambda f: f))",
        ),
        "/srv/app/app.py",
        "hello()",
    )
    chained = raising(CHAINED, "/srv/app/views.py", "outer()")
    generic = InternalServerError().get_body()
    return {
        "werkzeug-3-nameerror.html": render(plain),
        "werkzeug-3-chained.html": render(chained),
        "werkzeug-3-truncated.html": render(plain)[:4096],
        "flask-generic-500.html": generic,
    }


def main() -> None:
    FIXTURES.mkdir(exist_ok=True)
    for name, text in pages().items():
        (FIXTURES / name).write_text(text, encoding="utf-8")
        print("wrote", name)


if __name__ == "__main__":
    main()
