"""A tiny Flask API for the compose example. It sends no CORS headers: the proxy adds them."""

from flask import Flask, request

app = Flask(__name__)


@app.get("/api/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/hello")
def hello() -> dict[str, str | None]:
    return {"message": "hello from Flask", "origin": request.headers.get("Origin")}


@app.post("/api/echo")
def echo() -> dict[str, object]:
    return {"you_sent": request.get_json(silent=True)}


@app.get("/api/boom")
def boom() -> dict[str, object]:
    # A bug on purpose: in debug mode Flask answers with the debugger page, and the
    # proxy's log names the line: "NameError: name 'x' is not defined (app.py:27 in boom)".
    return {"value": x}  # type: ignore[name-defined]  # noqa: F821
