"""`cors-proxy demo` from the command line: a clear message without Flask, other free
ports when 3000 and 8080 are taken, and the bundled files it needs (issue 18 item 8).
The browser drives it in tests/browser/test_demo.py."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import urllib.request
from importlib import resources
from pathlib import Path

from proxy.config.loader import load
from tests.support import ROOT
from tests.support.cli import proxy_command, run_cli


def test_without_flask_it_says_how_to_install_it(tmp_path: Path) -> None:
    fake = tmp_path / "flask"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'flask'\")\n")
    r = run_cli("demo", env={"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])})
    assert r.returncode == 1
    assert "cors-proxy demo needs Flask" in r.stderr
    assert "pip install 'cors-dev-proxy[demo]'" in r.stderr
    assert "pip install '.[demo]'" in r.stderr
    assert "Traceback" not in r.stderr


def test_taken_ports_give_way_to_free_ones(tmp_path: Path) -> None:
    held = []
    for port in (3000, 8080):  # taken here (or already by something else)
        sock = socket.socket()
        # as a server binds: a port only in TIME-WAIT (an earlier test's) is taken too
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            sock.listen()
        held.append(sock)
    p = subprocess.Popen(
        [*proxy_command(), "demo"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=ROOT, start_new_session=True,
    )  # fmt: skip
    try:
        assert p.stdout is not None
        listening, page = p.stdout.readline().strip(), p.stdout.readline().strip()
        proxy_url = listening.split()[2]
        assert not proxy_url.endswith(":8080"), listening
        assert page.startswith("demo page: http://localhost:")
        page_url = page.removeprefix("demo page: ")
        assert not page_url.endswith(":3000/"), page
        with urllib.request.urlopen(page_url, timeout=10) as resp:
            html = resp.read().decode()
        proxy_port = proxy_url.rsplit(":", 1)[1]
        assert f'const PROXY = "http://localhost:{proxy_port}";' in html
    finally:
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=15)
        for sock in held:
            sock.close()
    assert p.returncode == 0, err
    assert "stopping demo-app (SIGINT to its process group)" in err
    assert f"inspector: {proxy_url}/__cors-proxy__/" in err  # stderr: stdout is for scripts


def test_the_bundled_files_ship_in_the_package() -> None:
    bundled = resources.files("proxy.demo")
    for name in ("app.py", "page.html", "rules.yaml"):
        assert bundled.joinpath(name).is_file(), name
    rules = bundled.joinpath("rules.yaml").read_text()
    path = ROOT / "proxy" / "demo" / "rules.yaml"
    assert rules == path.read_text()
    assert "{page_origin}" in rules


def test_the_bundled_rules_load_clean(tmp_path: Path) -> None:
    text = (ROOT / "proxy" / "demo" / "rules.yaml").read_text()
    path = tmp_path / "rules.yaml"
    path.write_text(text.replace("{page_origin}", "http://localhost:3000"))
    cfg = load(str(path))
    assert cfg.warnings == ()
    (rule,) = cfg.rules
    assert rule.origins == ("http://localhost:3000",)
    assert rule.allow_credentials
    assert "X-Api-Key" not in rule.allow_headers  # the demo's refused header
