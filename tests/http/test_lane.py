"""The fast lane (proxy/http/fastlane.py) on fake transports, step by step, the way uvicorn
tests its protocols: the client's bytes go in with ``data_received``, the upstream
answers on cue, and each test looks at what was written, the lane's state and the
transport's reading and writing flags, including the flow-control paths."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import pytest

from proxy.http import fastlane
from proxy.http.fastlane import Phase
from tests.support import ORIGIN
from tests.support.lane import OK, OK_BODY, FakeTransport, FakeUpstream, Lane, make_lane

GET = f"GET /api/hello HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n\r\n".encode()
HEAD = GET.replace(b"GET", b"HEAD", 1)
PREFLIGHT = (
    f"OPTIONS /api/echo HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n"
    "Access-Control-Request-Method: PUT\r\n\r\n"
).encode()
CLOSE = GET.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")


@pytest.fixture
def lane(fake_lane: Lane) -> Lane:
    return fake_lane


@pytest.fixture
async def held() -> AsyncIterator[Lane]:
    """A lane whose upstream answers only when the test says so."""
    lane = make_lane(FakeUpstream(reply=None))
    yield lane
    await lane.server.shutdown(0)


def phase(lane: Lane) -> Phase:
    return lane.lane.phase


def statuses(data: bytes) -> list[int]:
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


class TestAnswers:
    async def test_a_preflight_is_answered_before_data_received_returns(self, lane: Lane) -> None:
        lane.send(PREFLIGHT)
        answer = lane.client.take()  # no loop turn: no task
        assert answer.startswith(b"HTTP/1.1 204 No Content\r\n")
        assert f"Access-Control-Allow-Origin: {ORIGIN}\r\n".encode() in answer
        assert phase(lane) is Phase.IDLE
        assert lane.upstream.requests == []

    async def test_a_get_is_forwarded_in_a_task(self, lane: Lane) -> None:
        lane.send(GET)
        assert phase(lane) is Phase.ANSWERING
        assert lane.client.take() == b""
        await lane.turn()
        answer = lane.client.take()
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b"\r\n\r\n" + OK_BODY)
        assert lane.client.writes == 1  # the head waited for the first chunk: one write
        assert phase(lane) is Phase.IDLE
        (sent,) = lane.upstream.requests
        assert sent.startswith(b"GET /api/hello HTTP/1.1\r\n")
        assert b"X-Forwarded-For: 127.0.0.1\r\n" in sent

    async def test_pipelined_requests_are_answered_in_order(self, lane: Lane) -> None:
        lane.send(PREFLIGHT + GET + PREFLIGHT + HEAD + PREFLIGHT)
        assert statuses(lane.client.take()) == [204]  # then the GET's task
        await lane.turn(40)
        data = lane.client.take()
        assert statuses(data) == [200, 204, 200, 204]
        assert data.count(OK_BODY) == 1  # the HEAD's answer has none
        assert len(lane.upstream.requests) == 2

    async def test_a_head_split_anywhere_is_the_same_request(self, lane: Lane) -> None:
        for cut in (1, 17, len(PREFLIGHT) - 1):
            lane.send(PREFLIGHT[:cut])
            assert lane.client.take() == b""
            lane.send(PREFLIGHT[cut:])
            assert statuses(lane.client.take()) == [204]

    async def test_connection_close_ends_the_connection_after_the_answer(self, lane: Lane) -> None:
        lane.send(CLOSE + PREFLIGHT)  # nothing after a close is served
        await lane.turn()
        data = lane.client.take()
        assert statuses(data) == [200]
        assert b"\r\nConnection: close\r\n" in data
        assert lane.client.closed
        assert not lane.client.aborted
        assert phase(lane) is Phase.CLOSED

    async def test_a_half_closed_client_gets_its_answers_then_the_close(self, lane: Lane) -> None:
        lane.send(GET + PREFLIGHT)
        assert lane.lane.eof_received() is True  # keep the transport: answers are due
        assert "eof" in repr(lane.lane)
        await lane.turn(30)
        assert statuses(lane.client.take()) == [200, 204]
        assert lane.client.closed

    async def test_eof_while_idle_closes(self, lane: Lane) -> None:
        assert lane.lane.eof_received() is False  # asyncio closes the transport

    async def test_a_bug_is_a_500_with_close_and_one_log_line(
        self, lane: Lane, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken(*args: object) -> bool:
            raise RuntimeError("simulated bug")

        monkeypatch.setattr(lane.proxy, "answer_now", broken)
        lane.send(PREFLIGHT)
        data = lane.client.take()
        assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        assert b"Connection: close\r\n" in data
        assert lane.client.closed
        assert any("RuntimeError('simulated bug')" in line for line in lane.logs())


class TestHandover:
    async def test_a_body_hands_the_connection_over_with_its_bytes(
        self, lane: Lane, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        got: list[bytes] = []

        class Taker(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                got.append(b"<made>")

            def data_received(self, data: bytes) -> None:
                got.append(data)

        monkeypatch.setattr(lane.proxy, "take_over", Taker)
        post = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
        lane.send(PREFLIGHT + post + GET)
        assert statuses(lane.client.take()) == [204]
        assert got == [b"<made>", post + GET]
        assert isinstance(lane.client.protocol, Taker)
        assert phase(lane) is Phase.HANDED_OVER
        assert lane.lane not in lane.server.lanes

    @pytest.mark.parametrize(
        "head",
        [
            b"GET /x HTTP/1.0\r\nHost: x\r\n\r\n",
            b"GET /x HTTP/1.1\r\n\r\n",
            b"GET /__cors-proxy__/health HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET http://x/y HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"GET /x HTTP/1.1\nHost: x\n\n",
            b"GET /x HTTP/1.1\r\nHost: x\r\nX: " + b"a" * fastlane.MAX_HEAD + b"\r\n\r\n",
        ],
        ids=["http/1.0", "no host", "own endpoint", "absolute", "upgrade", "bare LF", "large"],
    )
    async def test_edges_go_to_aiohttp(
        self, lane: Lane, monkeypatch: pytest.MonkeyPatch, head: bytes
    ) -> None:
        monkeypatch.setattr(lane.proxy, "take_over", asyncio.Protocol)
        lane.send(head)
        assert phase(lane) is Phase.HANDED_OVER
        assert lane.client.take() == b""


class TestFlowControl:
    async def test_reading_pauses_past_the_pipelining_limit_and_resumes(self, held: Lane) -> None:
        held.send(GET)  # answered in a task that waits for the upstream
        await held.turn()
        held.send(PREFLIGHT * (fastlane.MAX_PIPELINED // len(PREFLIGHT) + 1))
        assert not held.client.reading
        assert "read-paused" in repr(held.lane)
        held.upstream.answer(OK + OK_BODY)
        await held.turn()
        assert held.client.reading  # the buffer was served: read again
        assert held.lane.buf == bytearray()

    async def test_a_slow_reader_pauses_the_body_and_the_upstream(self, held: Lane) -> None:
        held.send(GET)
        await held.turn()
        big = b"x" * (fastlane.SMALL_CHUNK + 1)
        held.upstream.answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%b\r\n" % (len(big), big)
        )
        await held.turn()
        assert held.client.take().startswith(b"HTTP/1.1 200 OK\r\n")
        held.lane.pause_writing()  # the client's socket buffer is full
        assert "write-paused" in repr(held.lane)
        held.upstream.answer(b"%x\r\n%b\r\n" % (len(big), big))
        await held.turn()
        assert len(held.client.take()) > len(big)  # written, then the relay waits
        held.upstream.answer(b"3\r\nend\r\n0\r\n\r\n")
        await held.turn()
        assert held.client.take() == b""  # nothing more while paused
        assert "answering" in repr(held.lane)
        held.lane.resume_writing()
        await held.turn()
        assert held.client.take().endswith(b"3\r\nend\r\n0\r\n\r\n")
        assert phase(held) is Phase.IDLE

    async def test_a_client_gone_while_paused_ends_the_answer(self, held: Lane) -> None:
        held.send(GET)
        await held.turn()
        held.upstream.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        await held.turn()
        held.lane.pause_writing()
        held.upstream.answer(b"x" * 50000)
        await held.turn()
        held.lane.connection_lost(None)  # the client went away
        await held.turn()
        assert phase(held) is Phase.CLOSED
        assert held.lane.task is None
        assert held.lane not in held.server.lanes
        line = held.logs()[-1]
        assert line.startswith("GET /api/hello 200 ")
        assert "client disconnected" in line

    async def test_an_upstream_cut_short_aborts_the_client(self, held: Lane) -> None:
        held.send(GET)
        await held.turn()
        held.upstream.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await held.turn()
        held.upstream.connections[-1].close()  # the upstream hangs up mid-body
        await held.turn()
        assert held.client.aborted  # never a short body that looks complete
        assert held.client.take().endswith(b"abc")


class TestLife:
    async def test_repr_shows_the_state(self, held: Lane) -> None:
        assert repr(held.lane) == "<FastLane 127.0.0.1 idle>"
        held.send(GET + b"GET /")
        assert repr(held.lane) == "<FastLane 127.0.0.1 answering 5 bytes unserved>"

    async def test_idle_connections_are_swept(
        self, lane: Lane, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        lane.send(PREFLIGHT)
        lane.server.keepalive_timeout = 0.0
        monkeypatch.setattr(time, "monotonic", lambda: lane.lane.last_active + 1)
        lane.server._sweep()
        assert lane.client.closed

    async def test_shutdown_closes_idle_and_waits_for_answers(self, held: Lane) -> None:
        other = held.server.make()
        busy = FakeTransport(other, ("127.0.0.1", 50001))
        other.connection_made(busy)  # type: ignore[arg-type]
        other.data_received(GET)
        await held.turn()
        stopping = asyncio.ensure_future(held.server.shutdown(5))
        await held.turn()
        assert held.client.closed  # idle: closed at once
        assert not busy.closed
        held.upstream.answer(OK + OK_BODY)
        await asyncio.wait_for(stopping, 2)
        answer = busy.take()
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Connection: close\r\n" in answer
        assert busy.closed
