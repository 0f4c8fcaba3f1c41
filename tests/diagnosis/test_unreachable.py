"""The words for an unreachable upstream (pure): the other loopback family, containers,
DNS, timeouts, and ports held by something that is not the app."""

from __future__ import annotations

from proxy.diagnosis.unreachable import (
    dns_hint,
    impostor,
    loopback_alternatives,
    refused_hint,
    timeout_hint,
)


def test_loopback_alternatives() -> None:
    assert loopback_alternatives("localhost") == ("127.0.0.1", "::1")
    assert loopback_alternatives("127.0.0.1") == ("::1",)
    assert loopback_alternatives("[::1]") == ("127.0.0.1",)
    assert loopback_alternatives("example.com") == ()


def test_refused_names_the_family_that_answers() -> None:
    hint = refused_hint(
        "localhost", 5000, tried=["::1"], answering=["127.0.0.1"], in_container=False
    )
    assert hint.startswith("localhost resolves to [::1] here; nothing listens on [::1] port 5000")
    assert "but 127.0.0.1:5000 answers: the dev server listens on IPv4 only" in hint
    assert "Set upstream to http://127.0.0.1:5000" in hint
    hint = refused_hint(
        "127.0.0.1", 5000, tried=["127.0.0.1"], answering=["::1"], in_container=False
    )
    assert "[::1]:5000 answers: the dev server listens on IPv6 only" in hint
    assert "flask run --host 127.0.0.1" in hint


def test_refused_without_an_alternative() -> None:
    plain = refused_hint("127.0.0.1", 5000, tried=["127.0.0.1"], answering=[], in_container=False)
    assert plain == "nothing listens on 127.0.0.1:5000; is the dev server running, on this port?"
    boxed = refused_hint("127.0.0.1", 5000, tried=["127.0.0.1"], answering=[], in_container=True)
    assert "(127.0.0.1 here is the container itself)" in boxed
    assert "http://host.docker.internal:5000" in boxed
    remote = refused_hint("api", 5000, tried=["10.0.0.7"], answering=[], in_container=True)
    assert "container itself" not in remote


def test_refused_on_the_host_of_a_container_names_the_loopback_trap() -> None:
    """Issue 17: the dev server on the host listens on 127.0.0.1 only; from a container
    host.docker.internal (or podman's host.containers.internal) then refuses."""
    for name in ("host.docker.internal", "host.containers.internal", "HOST.DOCKER.INTERNAL"):
        for inside in (True, False):
            hint = refused_hint(name, 5000, tried=["172.17.0.1"], answering=[], in_container=inside)
            assert f"nothing listens on {name}:5000" in hint
            assert "listens on 127.0.0.1 only" in hint
            assert "--host 0.0.0.0" in hint


def test_dns_timeout_and_impostor_wording() -> None:
    assert "extra_hosts" in dns_hint("host.docker.internal", in_container=True)
    assert "service name" in dns_hint("web", in_container=True)
    assert dns_hint("web", in_container=False) == (
        "the name 'web' does not resolve here; check the host in upstream"
    )
    assert "within 2s" in timeout_hint("10.0.0.7", 5000, 2.0)
    assert impostor("AirTunes/595.13.1", 5000) is not None
    assert "AirPlay Receiver" in (impostor("AirTunes/595.13.1", 5000) or "")
    assert impostor("Werkzeug/3.1.3 Python/3.11.7", 5000) is None
    assert impostor(None, 5000) is None


# -- through real sockets -----------------------------------------------------------------
