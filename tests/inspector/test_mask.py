"""Secrets never reach the inspector page (proxy/inspector/mask.py, pure)."""

from __future__ import annotations

import pytest

from proxy.inspector.mask import MASK, curl_value, is_secret, mask_query, mask_value


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("Cookie", "session=s3cr3t; theme=dark", f"session={MASK}; theme={MASK}"),
        ("cookie", "lonely", MASK),
        (
            "Set-Cookie",
            "sid=s3cr3t; Path=/; SameSite=None; Secure",
            f"sid={MASK}; Path=/; SameSite=None; Secure",
        ),
        ("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9", f"Bearer {MASK} (20 characters)"),
        ("Authorization", "s3cr3t", f"{MASK} (6 characters)"),
        ("Proxy-Authorization", "Basic dXNlcjpwYXNz", f"Basic {MASK} (12 characters)"),
        ("X-Api-Key", "k-123", f"{MASK} (5 characters)"),
        ("X-CSRF-Token", "abc", f"{MASK} (3 characters)"),
        ("X-Session-Id", "42", f"{MASK} (2 characters)"),
        (
            "Referer",
            "http://localhost:3000/cb?code=abc&state=1",
            f"http://localhost:3000/cb?code={MASK}&state=1",
        ),
        # what CORS debugging needs stays
        ("Access-Control-Allow-Credentials", "true", "true"),
        ("Access-Control-Allow-Headers", "authorization, x-api-key", "authorization, x-api-key"),
        ("Access-Control-Request-Headers", "authorization", "authorization"),
        ("Origin", "http://localhost:3000", "http://localhost:3000"),
        ("Vary", "Origin, Cookie", "Origin, Cookie"),
    ],
)
def test_mask_value(name: str, value: str, shown: str) -> None:
    assert mask_value(name, value) == shown
    if shown != value:
        assert "s3cr3t" not in mask_value(name, value)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("/api/x?token=abc&page=2", f"/api/x?token={MASK}&page=2"),
        ("/cb?access_token=a.b.c#frag", f"/cb?access_token={MASK}#frag"),
        (
            "/s3?X-Amz-Signature=ff&X-Amz-Credential=k",
            f"/s3?X-Amz-Signature={MASK}&X-Amz-Credential={MASK}",
        ),
        ("/api/x?api_key=1;password=2", f"/api/x?api_key={MASK};password={MASK}"),
        (
            "Access to fetch at 'http://h/p?sig=abc' from origin",
            f"Access to fetch at 'http://h/p?sig={MASK}' from origin",
        ),
        ("/api/items?page=2&sort=name", "/api/items?page=2&sort=name"),
        ("/api/no-query", "/api/no-query"),
    ],
)
def test_mask_query(text: str, shown: str) -> None:
    assert mask_query(text) == shown


def test_reproductions_get_placeholders() -> None:
    assert curl_value("Authorization", "Bearer x") == "<your authorization>"
    assert curl_value("X-Api-Key", "k") == "<your x-api-key>"
    assert curl_value("Content-Type", "application/json") == "application/json"
    assert is_secret("x-auth-token")
    assert not is_secret("content-type")
