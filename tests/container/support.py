"""Helpers for the container tests: podman, plain HTTP, waiting, names and ports.

These tests drive podman (rootful, as set up by ``.ci/make-base-image.sh``;
the same commands work with Docker's CLI semantics). They FAIL, never skip, when podman,
the base image, the build or a container does not work: CI must not go green by not
testing the image.

Environment knobs:

``CORS_PROXY_TEST_BASE_IMAGE``
    the ``BASE_IMAGE`` build argument (default ``localhost/python:3.11-slim-local``,
    the local stand-in for ``python:3.11-slim`` that ``.ci/make-base-image.sh`` builds from
    Debian's packages; set ``python:3.11-slim`` where Docker Hub is reachable, and that
    script pulls it instead).

Every container, pod and compose project gets a unique name, so two runs on one
machine do not collide, and every port is published on 127.0.0.1 only. Tests talk to
published ports, never to container addresses.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "examples" / "compose"
BASE_IMAGE = os.environ.get("CORS_PROXY_TEST_BASE_IMAGE", "localhost/python:3.11-slim-local")
IMAGE = "localhost/cors-proxy:test"
API_IMAGE = "localhost/cors-proxy-example-api:test"
HEALTH_PATH = "/__cors-proxy__/health"

# podman without systemd prints these on every run/rm of a container with a HEALTHCHECK;
# they are noise here (health checks are run by hand with `podman healthcheck run`).
_NOISE = ("unable to get systemd connection", "healthcheck: unable to get systemd")


def _clean(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if not any(n in line for n in _NOISE))


def podman_env() -> dict[str, str]:
    # Docker image format: the OCI format silently drops HEALTHCHECK.
    return {**os.environ, "BUILDAH_FORMAT": "docker"}


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS``; a non-zero exit fails the test (``check``) with its stderr."""
    try:
        proc = subprocess.run(
            ["podman", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=podman_env(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`podman {' '.join(args)}` took more than {timeout}s")
    proc.stderr = _clean(proc.stderr)
    if check and proc.returncode != 0:
        pytest.fail(
            f"`podman {' '.join(args)}` exited {proc.returncode}:\n"
            f"{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}"
        )
    return proc


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ HTTP


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    def header_list(self, name: str) -> list[str]:
        return self.headers.get_all(name) or []

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 10,
) -> Reply:
    """One request with http.client: no environment proxies, no redirects, raw headers."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp.status, resp.msg, resp.read())
    finally:
        conn.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Call ``check`` until it returns something truthy without raising; else fail."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
            last = result
        except (OSError, http.client.HTTPException, ValueError, AssertionError) as exc:
            last = exc
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def wait_healthy(
    base_url: str,
    timeout: float = 20,
    upstream: bool = False,
    container: Container | None = None,
) -> dict[str, Any]:
    """Poll the proxy's health endpoint; with ``upstream``, until the upstream is reachable.

    With ``container``, fail at once (showing its logs) if it has exited.
    """

    def check() -> dict[str, Any] | None:
        if container is not None and not container.running():
            stdout, stderr = container.logs()
            code = container.inspect("{{.State.ExitCode}}")
            pytest.fail(
                f"container {container.name} exited ({code}) instead of serving:\n"
                f"--- stdout\n{stdout[-2000:]}\n--- stderr\n{stderr[-4000:]}"
            )
        reply = request("GET", base_url + HEALTH_PATH, timeout=2)
        if reply.status != 200:
            return None
        data: dict[str, Any] = reply.json()
        return data if (data.get("upstream_reachable") or not upstream) else None

    result: dict[str, Any] = wait_for(f"{base_url}{HEALTH_PATH}", check, timeout)
    return result


# ------------------------------------------------------------------ podman


def build(tag: str, context: Path) -> float:
    started = time.monotonic()
    podman("build", "-q", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", tag, str(context),
           timeout=600)  # fmt: skip
    return time.monotonic() - started


@dataclass
class Container:
    name: str

    def logs(self) -> tuple[str, str]:
        proc = podman("logs", self.name, check=False)
        return proc.stdout, _clean(proc.stderr)

    def inspect(self, fmt: str) -> str:
        return podman("inspect", "--format", fmt, self.name).stdout.strip()

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}") == "true"


@dataclass
class Podman:
    """Starts containers and pods, and removes all of them at the end of the test."""

    containers: list[str] = field(default_factory=list)
    pods: list[str] = field(default_factory=list)

    def run(self, *args: str, name: str | None = None) -> Container:
        name = name or unique("cpt")
        self.containers.append(name)
        podman("run", "-d", "--name", name, *args)
        return Container(name)

    def pod(self, *args: str) -> str:
        name = unique("cpt-pod")
        self.pods.append(name)
        podman("pod", "create", "--name", name, *args)
        return name

    def cleanup(self) -> None:
        for name in reversed(self.containers):
            podman("rm", "-f", "-t", "0", name, check=False)
        for name in self.pods:
            podman("pod", "rm", "-f", "-t", "0", name, check=False)


@dataclass
class Stack:
    """The proxy container and a Flask API container sharing a pod's network."""

    url: str
    proxy: Container
    api: Container


ALLOWED_ORIGIN = "http://localhost:3000"


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
]
