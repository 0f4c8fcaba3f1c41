"""Fixtures for the container tests: the image (built once per session), containers
and pods that are removed after each test, the zero-config stack, and Chromium.

They FAIL, never skip, when podman, the base image, the build or a container does not
work. Helpers and knobs are described in ``support.py``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.container.support import (
    ALLOWED_ORIGIN,
    API_IMAGE,
    BASE_IMAGE,
    COMPOSE_DIR,
    IMAGE,
    REPO,
    Podman,
    Stack,
    build,
    free_port,
    podman,
    wait_healthy,
)


@pytest.fixture(scope="session")
def podman_ready() -> None:
    if shutil.which("podman") is None:
        pytest.fail(
            "podman is not installed: run `bash .ci/make-base-image.sh` as root "
            "(the container tests fail rather than skip)"
        )
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        pytest.fail(
            f"base image {BASE_IMAGE} is missing: run `bash .ci/make-base-image.sh` as root "
            "(or set CORS_PROXY_TEST_BASE_IMAGE to an image you can pull)"
        )


@pytest.fixture(scope="session")
def image(podman_ready: None) -> str:
    """The project's image, built once per session from the working tree."""
    build(IMAGE, REPO)
    return IMAGE


@pytest.fixture(scope="session")
def api_image(podman_ready: None) -> str:
    """The compose example's Flask API image (a real Werkzeug dev server)."""
    build(API_IMAGE, COMPOSE_DIR / "api")
    return API_IMAGE


@pytest.fixture
def pm(podman_ready: None) -> Iterator[Podman]:
    runner = Podman()
    yield runner
    runner.cleanup()


@pytest.fixture(scope="module")
def pm_module(podman_ready: None) -> Iterator[Podman]:
    runner = Podman()
    yield runner
    runner.cleanup()


@pytest.fixture(scope="module")
def stack(pm_module: Podman, image: str, api_image: str) -> Stack:
    """The zero-config way: CORS_PROXY_UPSTREAM + CORS_PROXY_ORIGINS, no file.

    Flask (debug mode, so 500s are debugger pages) listens on the pod's 5000; the proxy
    reaches it at 127.0.0.1:5000; the test reaches the proxy on a published port.
    """
    port = free_port()
    pod = pm_module.pod("-p", f"127.0.0.1:{port}:8080")
    api = pm_module.run("--pod", pod, "-e", "FLASK_DEBUG=1", api_image)
    proxy = pm_module.run(
        "--pod",
        pod,
        "-e",
        "CORS_PROXY_UPSTREAM=http://127.0.0.1:5000",
        "-e",
        f"CORS_PROXY_ORIGINS={ALLOWED_ORIGIN},https://app.example.com",
        image,
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, timeout=20, upstream=True, container=proxy)
    return Stack(url, proxy, api)


# ------------------------------------------------------------------ browser


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if path is None:
        pytest.fail(
            "Chromium is not installed: apt-get install -y --no-install-recommends chromium "
            "(never `playwright install`)"
        )
    return path
