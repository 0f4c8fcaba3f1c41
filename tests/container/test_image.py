"""The Docker image, built from the working tree and run with podman.

A real Flask dev server (the compose example's API, in debug mode) runs next to the
proxy in a pod; requests go to the port the pod publishes on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.container.support import (
    ALLOWED_ORIGIN,
    HEALTH_PATH,
    Podman,
    Stack,
    free_port,
    podman,
    request,
    wait_for,
    wait_healthy,
)

pytestmark = pytest.mark.container


def test_image_metadata(image: str) -> None:
    info = json.loads(podman("image", "inspect", image).stdout)[0]
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert "8080/tcp" in config["ExposedPorts"]
    assert "CORS_PROXY_LISTEN=0.0.0.0:8080" in config["Env"]
    # exec form: a JSON array, and the wrapper execs cors-proxy so it is PID 1
    assert config["Entrypoint"][0] == "/bin/sh"
    assert "exec cors-proxy" in config["Entrypoint"][2]
    # podman shows the health check at the top level, Docker under Config
    health = info.get("Healthcheck") or config["Healthcheck"]
    assert health["Test"][:2] == ["CMD", "python"]  # no curl in slim images
    assert HEALTH_PATH in health["Test"][-1]
    assert config["Labels"]["org.opencontainers.image.title"] == "cors-proxy"


def test_runs_as_pid_1_and_non_root(stack: Stack) -> None:
    ps = podman("top", stack.proxy.name, "pid", "user", "args").stdout
    first = ps.splitlines()[1].split(None, 2)
    assert first[0] == "1"
    assert first[1] in ("10001", "cors-proxy")
    assert "cors-proxy" in first[2]
    stdout, _ = stack.proxy.logs()
    assert "listening on http://0.0.0.0:8080 -> http://127.0.0.1:5000" in stdout


def test_health_check_passes(stack: Stack) -> None:
    proc = podman("healthcheck", "run", stack.proxy.name, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert stack.proxy.inspect("{{.State.Health.Status}}") == "healthy"
    health = request("GET", stack.url + HEALTH_PATH).json()
    assert health["status"] == "ok"
    assert health["upstream"] == "http://127.0.0.1:5000"
    assert health["upstream_reachable"] is True


def test_inspector_answers_on_the_published_loopback_port(stack: Stack) -> None:
    """Inside the container the host's loopback connections arrive from the network's
    gateway, not from 127.0.0.1; the inspector answers them by default."""
    _, stderr = stack.proxy.logs()
    assert "inspector: http://localhost:8080/__cors-proxy__/" in stderr
    request("GET", stack.url + "/api/hello", {"Origin": "http://evil.test"})
    page = request("GET", stack.url + "/__cors-proxy__/")
    assert page.status == 200
    assert "Content-Security-Policy" in page.headers
    kept = wait_for(
        "the blocked exchange on the inspector",
        lambda: request("GET", stack.url + "/__cors-proxy__/exchanges?blocked=1").json()[
            "exchanges"
        ],
        timeout=5,
    )
    assert kept[0]["origin"] == "http://evil.test"


def test_request_through_container_gets_cors_headers(stack: Stack) -> None:
    reply = request("GET", stack.url + "/api/hello", {"Origin": ALLOWED_ORIGIN})
    assert reply.status == 200
    assert reply.json() == {"message": "hello from Flask", "origin": ALLOWED_ORIGIN}
    assert reply.header_list("Access-Control-Allow-Origin") == [ALLOWED_ORIGIN]
    assert reply.headers["Access-Control-Allow-Credentials"] == "true"
    assert "origin" in reply.headers["Vary"].lower()

    other = request("GET", stack.url + "/api/hello", {"Origin": "http://evil.test"})
    assert other.status == 200
    assert not [k for k in other.headers if k.lower().startswith("access-control-")]


def test_preflight_answered_by_container(stack: Stack) -> None:
    reply = request(
        "OPTIONS",
        stack.url + "/api/echo",
        {
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-token",
        },
    )
    assert reply.status == 204
    assert reply.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    assert "x-token" in reply.headers["Access-Control-Allow-Headers"].lower()


def test_upstream_500_is_diagnosed_in_container_logs(stack: Stack) -> None:
    reply = request("GET", stack.url + "/api/boom", {"Origin": ALLOWED_ORIGIN})
    assert reply.status == 500
    assert reply.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN  # errors keep CORS

    def diagnosis() -> str | None:
        _, stderr = stack.proxy.logs()
        lines = [line for line in stderr.splitlines() if "NameError" in line]
        return lines[-1] if lines else None

    line = wait_for("the diagnosis line in `podman logs`", diagnosis, timeout=5)
    assert "NameError: name 'x' is not defined (app.py:" in line
    assert "in boom)" in line


def test_sigterm_stops_with_exit_0(pm: Podman, image: str) -> None:
    port = free_port()
    # arguments after the image name go to cors-proxy
    args = ["--upstream", "http://127.0.0.1:9", "--origin", ALLOWED_ORIGIN]
    proxy = pm.run("-p", f"127.0.0.1:{port}:8080", image, *args)
    wait_healthy(f"http://127.0.0.1:{port}", timeout=15, container=proxy)
    started = time.monotonic()
    # -t 10: podman sends SIGTERM and would SIGKILL only after 10 s (exit code 137)
    podman("stop", "-t", "10", proxy.name, timeout=30)
    took = time.monotonic() - started
    assert proxy.inspect("{{.State.ExitCode}}") == "0"
    assert took < 5, f"podman stop took {took:.1f}s: SIGTERM did not stop the proxy"
    stdout, _ = proxy.logs()
    assert "listening on http://0.0.0.0:8080 -> http://127.0.0.1:9" in stdout


def _write(path: Path, text: str, replace: bool) -> None:
    if replace:  # what many editors do: write a new file, rename it over the old one
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.chmod(0o644)
        os.replace(tmp, path)
    else:  # in place: same inode, what a single-file bind mount can see
        with path.open("r+") as f:
            f.write(text)
            f.truncate()


def _config(origin: str) -> str:
    return (
        'upstream: "http://127.0.0.1:9"\n'
        "rules:\n"
        "  - name: web\n"
        f'    origins: ["{origin}"]\n'
        "    allow_methods: [GET, POST]\n"
        "    allow_headers: [Content-Type]\n"
    )


def _preflight(url: str, origin: str) -> int:
    reply = request(
        "OPTIONS",
        url + "/api/items",
        {"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    return reply.status


@pytest.mark.parametrize(
    "mount",
    [
        pytest.param("directory", id="directory-mount-atomic-replace"),
        pytest.param("file", id="file-mount-in-place-write"),
    ],
)
def test_config_reload_on_bind_mount(pm: Podman, image: str, tmp_path: Path, mount: str) -> None:
    config_dir = tmp_path / "cors-proxy"
    config_dir.mkdir()
    config_dir.chmod(0o755)  # the proxy runs as uid 10001
    tmp_path.chmod(0o755)
    config = config_dir / "config.yaml"
    config.write_text(_config("http://localhost:3000"))
    config.chmod(0o644)
    volume = (
        f"{config_dir}:/etc/cors-proxy:ro"
        if mount == "directory"
        else f"{config}:/etc/cors-proxy/config.yaml:ro"
    )
    port = free_port()
    proxy = pm.run("-p", f"127.0.0.1:{port}:8080", "-v", volume, image)
    url = f"http://127.0.0.1:{port}"
    generation = wait_healthy(url, timeout=15, container=proxy)["config_generation"]
    assert _preflight(url, "http://localhost:3000") == 204
    assert _preflight(url, "http://localhost:4000") == 403

    _write(config, _config("http://localhost:4000"), replace=mount == "directory")

    wait_for(
        "the edited config to take effect",
        lambda: _preflight(url, "http://localhost:4000") == 204,
        timeout=8,
        interval=0.25,
    )
    assert _preflight(url, "http://localhost:3000") == 403
    reloaded = request("GET", url + HEALTH_PATH).json()["config_generation"]
    assert reloaded > generation

    if mount == "directory":
        # an invalid edit is refused: the proxy keeps running with the last good config
        _write(config, "rules: [oops\n", replace=True)
        time.sleep(2.5)  # more than two polling intervals
        assert proxy.running()
        assert _preflight(url, "http://localhost:4000") == 204
        assert request("GET", url + HEALTH_PATH).json()["config_generation"] == reloaded
