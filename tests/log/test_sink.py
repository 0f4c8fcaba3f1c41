"""The sink on a real pipe (proxy/log/sink.py): a reader that does not read never blocks
the writer; what does not fit in the backlog is dropped, counted and said."""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Iterator

import pytest

from proxy.log.sink import LogSink


@pytest.fixture
def pipe() -> Iterator[tuple[int, io.TextIOWrapper]]:
    """A pipe's read end and its write end as a text stream (stderr's kind)."""
    r, w = os.pipe()
    stream = open(w, "w", encoding="utf-8")  # noqa: SIM115  (closed below)
    yield r, stream
    stream.close()
    os.close(r)


def read_all(fd: int, sink: LogSink) -> bytes:
    """Read the pipe until everything the sink handed over is written (10 s at most)."""
    out = bytearray()
    os.set_blocking(fd, False)
    try:
        for _ in range(1000):
            done = not sink.waiting  # written into the pipe: the reads below get it all
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(fd, 1 << 16):
                    out += chunk
            if done:
                return bytes(out)
            time.sleep(0.01)
    finally:
        os.set_blocking(fd, True)
    raise AssertionError("the sink's lines never reached the pipe")


def test_an_unread_pipe_never_blocks_and_drops_what_does_not_fit(
    pipe: tuple[int, io.TextIOWrapper],
) -> None:
    r, stream = pipe
    sink = LogSink(stream, "text", backlog=200_000)
    line = "x" * 999
    for n in range(2000):  # 2 MB: ten times the backlog, thirty the pipe
        sink.message(f"{n:04d}{line}")
        sink.flush()  # each on its own: a blocking write would hang here
    assert sink.waiting <= 200_000
    assert 1000 < sink.dropped < 2000
    dropped = sink.dropped
    text = read_all(r, sink).decode()
    sink.message("after")
    sink.flush()
    text += read_all(r, sink).decode()
    lines = text.splitlines()
    kept = [x for x in lines if x.endswith(line)]
    notices = [x for x in lines if "dropped" in x]
    assert len(kept) + dropped == 2000
    assert kept == sorted(kept)  # in order, nothing torn
    assert all(len(x) == 1003 for x in kept)
    said = sum(int(x.split()[0]) for x in notices)  # each after a drop, once a line fits
    assert said == dropped
    assert notices[-1].endswith(
        " log lines dropped: the log's reader (stderr) did not keep up, and "
        "more than 195 KiB waited for it (a paused pager or terminal?)"
    )
    assert lines[-1] == "after"


def test_the_dropped_notice_is_a_json_line_in_json(pipe: tuple[int, io.TextIOWrapper]) -> None:
    r, stream = pipe
    sink = LogSink(stream, "json", backlog=10_000)
    for _ in range(200):  # 200 KB: more than the pipe and the backlog hold
        sink.message("m" * 1000)
        sink.flush()
    assert sink.dropped > 0
    text = read_all(r, sink).decode()
    sink.message("next")
    sink.flush()
    lines = [json.loads(x) for x in (text + read_all(r, sink).decode()).splitlines()]
    assert sum(x.get("dropped_lines", 0) for x in lines) == sink.dropped
    assert lines[-1] == {"message": "next"}


def test_a_reader_gone_is_not_an_error() -> None:
    r, w = os.pipe()
    os.close(r)  # every write fails with EPIPE
    with open(w, "w", encoding="utf-8") as stream:
        sink = LogSink(stream, "text")
        sink.message("nobody reads")
        sink.close(timeout=5)
        assert sink._pipe is not None
        assert sink._pipe.broken
        sink.message("still nobody")
        sink.flush()
        assert sink.dropped == 0  # nothing to count: nobody will ever read


def test_close_gives_a_slow_reader_a_bounded_time(pipe: tuple[int, io.TextIOWrapper]) -> None:
    _, stream = pipe
    sink = LogSink(stream, "text")
    for _ in range(200):  # 200 KB: more than the pipe holds
        sink.message("y" * 1000)
    sink.close(timeout=0.2)  # returns, the reader never read
    assert sink.waiting > 0


def test_a_stream_without_a_descriptor_is_written_at_once() -> None:
    stream = io.StringIO()
    sink = LogSink(stream, "text", backlog=10)
    sink.message("a line longer than the backlog")
    sink.flush()
    assert stream.getvalue() == "a line longer than the backlog\n"
    assert sink.dropped == 0
