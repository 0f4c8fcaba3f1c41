"""The log line (proxy/log/record.py, pure): one line per exchange, its template with the
``ms`` left open (a replayed preflight fills it in) and its request part (``start``, cached
per request head by the generation's request cache); and the sink (proxy/log/sink.py)
that writes the lines of many exchanges at once."""

from __future__ import annotations

import asyncio
import io
import json

from hypothesis import given
from hypothesis import strategies as st

from proxy.log.record import Record
from proxy.log.sink import FLUSH_DELAY, LogSink


def preflight(**fields: object) -> Record:
    rec = Record(
        "OPTIONS", "/api/echo", 204, "http://localhost:3000", "preflight-ok", "frontend", 0.04
    )
    for name, value in fields.items():
        setattr(rec, name, value)
    return rec


def test_text_line_reads_as_before() -> None:
    rec = preflight(note="for PUT with x-custom")
    assert rec.text() == (
        "OPTIONS /api/echo 204 origin=http://localhost:3000 cors=preflight-ok[frontend] "
        "0.0ms | for PUT with x-custom"
    )
    denied = preflight(status=403, cors="preflight-denied", reason="origin x", fix="add x")
    denied.repro = ("curl -i -X OPTIONS http://127.0.0.1:8080/api/echo",)
    assert denied.text() == (
        "OPTIONS /api/echo 403 origin=http://localhost:3000 cors=preflight-denied[frontend] "
        "0.0ms | origin x | fix: add x\n"
        "    reproduce: curl -i -X OPTIONS http://127.0.0.1:8080/api/echo"
    )


def test_template_renders_each_time_with_its_own_ms() -> None:
    rec = preflight(note="for PUT")
    line = rec.template()
    assert line.render(0.04) == rec.text()
    assert line.render(12.345).endswith(" 12.3ms | for PUT")
    painted = rec.template(color=True).render(1.0)
    assert "\x1b[32m204\x1b[0m" in painted
    assert " 1.0ms" in painted


def test_json_keeps_the_field_order_and_only_the_set_fields() -> None:
    rec = preflight(note="for PUT", hints=("a", "b"))
    text = rec.json()
    assert list(json.loads(text)) == [
        "method", "path", "status", "origin", "cors", "rule", "ms", "note", "hints",
    ]  # fmt: skip
    assert json.loads(text)["ms"] == 0.04
    assert json.loads(rec.template(as_json=True).render(3.14159))["ms"] == 3.14
    bare = Record("GET", "/", 200, None, "no-origin", None, 1.0)
    assert json.loads(bare.json()) == {
        "method": "GET", "path": "/", "status": 200, "cors": "no-origin", "ms": 1.0,
    }  # fmt: skip


@given(
    st.text(max_size=40),
    st.text(max_size=40),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_json_template_is_json_whatever_the_fields_hold(path: str, note: str, ms: float) -> None:
    # values that look like the ms field, or like JSON, stay values
    rec = preflight(path=path + ', "ms": 1}', note=note)
    data = json.loads(rec.template(as_json=True).render(ms))
    assert data["path"] == path + ', "ms": 1}'
    assert data["ms"] == round(ms, 2)
    assert data.get("note", "") == note


VARIATIONS = [
    ("status", 403), ("hints", ("cookie x",)), ("fix", "add y"), ("rule", None),
    ("origin", None), ("verdict", "blocked"), ("console", "blocked by CORS"),
    ("repro", ("curl z",)), ("reason", "origin x"), ("diagnosis", "NameError"),
    ("note", "for DELETE"), ("cors", "preflight-denied"), ("path", "/api/other"),
    ("method", "PUT"), ("origin", ""),
]  # fmt: skip


def test_lines_differ_in_every_field_and_a_kept_start_changes_nothing() -> None:
    """A line made from a request part made before (the request cache keeps one per
    head) is the line made from scratch, whatever the other fields hold."""
    base = preflight(note="for PUT")
    for name, value in VARIATIONS:
        other = preflight(**{"note": "for PUT", name: value})
        if name != "verdict":  # the text line shows the console message, not the verdict
            assert other.text() != base.text(), name
        assert other.json() != base.json(), name
        for color, as_json in ((False, False), (True, False), (False, True)):
            start = other.start(color, as_json=as_json)
            for ms in (0.04, 12.345):
                cached = other.template(color, as_json=as_json, start=start).render(ms)
                assert cached == other.template(color, as_json=as_json).render(ms), name
        if name not in ("method", "path", "origin", "cors", "rule"):
            # fields the request does not fix: the request part stays the same
            assert other.start() == base.start(), name
            assert other.start(as_json=True) == base.start(as_json=True), name
    long = preflight(path="/api/" + "x" * 20)
    assert long.text().startswith("OPTIONS /api/xxxxxxxxxxxxxxxxxxxx 204 ")


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_the_sink_writes_the_lines_of_many_exchanges_at_once() -> None:
    stream = CountingStream()
    sink = LogSink(stream, "text")
    for n in range(3):
        sink.record(preflight(path=f"/api/{n}"))
    sink.message("config generation 2 active")
    assert stream.writes == 0  # they wait a moment for others to share the write
    await asyncio.sleep(FLUSH_DELAY * 4)
    assert stream.writes == 1
    lines = stream.getvalue().splitlines()
    assert [line.split(" ")[1] for line in lines[:3]] == ["/api/0", "/api/1", "/api/2"]
    assert lines[3] == "config generation 2 active"
    sink.message("stopping")
    sink.flush()  # at shutdown, at once
    assert stream.getvalue().endswith("stopping\n")


def test_the_sink_writes_at_once_without_a_loop() -> None:
    stream = CountingStream()
    LogSink(stream, "json").record(preflight())
    assert json.loads(stream.getvalue())["status"] == 204
