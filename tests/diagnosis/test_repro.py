"""curl reproduction lines for blocked exchanges (pure)."""

from __future__ import annotations

from proxy.diagnosis.repro import curl_commands


def test_preflighted_put_gives_two_commands_without_secrets() -> None:
    lines = curl_commands(
        url="http://127.0.0.1:8080/api/items",
        origin="http://localhost:3000",
        method="PUT",
        headers=[
            ("Host", "x"),
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer s3cret"),
            ("Cookie", "sid=abc"),
        ],
    )
    assert lines == [
        "curl -i -X OPTIONS http://127.0.0.1:8080/api/items -H 'Origin: http://localhost:3000' "
        "-H 'Access-Control-Request-Method: PUT' -H 'Access-Control-Request-Headers: authorization,content-type'",
        "curl -i -X PUT http://127.0.0.1:8080/api/items -H 'Origin: http://localhost:3000' "
        "-H 'Content-Type: application/json' -H 'Authorization: <your authorization>' -H 'Cookie: <your cookie>'",
    ]
    assert "s3cret" not in " ".join(lines)
    assert "abc" not in " ".join(lines)


def test_simple_get_has_no_preflight() -> None:
    lines = curl_commands(
        url="http://p/x", origin="http://a.test", method="GET", headers=[("Accept", "*/*")]
    )
    assert lines == ["curl -i -X GET http://p/x -H 'Origin: http://a.test' -H 'Accept: */*'"]


def test_preflight_request_as_received() -> None:
    lines = curl_commands(
        url="http://p/x",
        origin="http://a.test",
        method="DELETE",
        headers=[("Access-Control-Request-Method", "DELETE")],
        preflight_headers="x-token",
    )
    assert lines[0].endswith(
        "-H 'Access-Control-Request-Method: DELETE' -H 'Access-Control-Request-Headers: x-token'"
    )
    assert lines[1] == "curl -i -X DELETE http://p/x -H 'Origin: http://a.test'"
