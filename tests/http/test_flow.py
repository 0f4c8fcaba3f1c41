"""FlowControl (proxy/http/flow.py): the back-pressure state both the fast lane and the
upstream client keep, on a fake transport."""

from __future__ import annotations

import asyncio

import pytest

from proxy.http.flow import FlowControl


class Transport:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


def flow() -> tuple[FlowControl, Transport]:
    t = Transport()
    return FlowControl(t), t  # type: ignore[arg-type]


def test_reading_pauses_and_resumes_once_whoever_asks() -> None:
    f, t = flow()
    f.resume_reading()
    f.pause_reading()
    f.pause_reading()
    assert f.read_paused
    f.resume_reading()
    f.resume_reading()
    assert t.calls == ["pause", "resume"]
    assert repr(f) == "<FlowControl flowing>"


async def test_drain_returns_at_once_while_writing_flows() -> None:
    f, _ = flow()
    await asyncio.wait_for(f.drain(), 0.1)


async def test_drain_waits_for_resume_writing() -> None:
    f, _ = flow()
    f.pause_writing()
    assert repr(f) == "<FlowControl write_paused>"
    waiting = asyncio.ensure_future(f.drain())
    await asyncio.sleep(0)
    assert not waiting.done()
    f.resume_writing()
    await asyncio.wait_for(waiting, 0.1)
    assert not f.write_paused


async def test_drain_raises_once_the_connection_is_lost() -> None:
    f, _ = flow()
    f.pause_writing()
    waiting = asyncio.ensure_future(f.drain())
    await asyncio.sleep(0)
    f.lost("client disconnected")
    with pytest.raises(ConnectionResetError, match="client disconnected"):
        await waiting
    with pytest.raises(ConnectionResetError):  # and every drain after it
        await f.drain()
    assert "lost" in repr(f)


async def test_a_cancelled_drain_leaves_the_next_one_working() -> None:
    f, _ = flow()
    f.pause_writing()
    first = asyncio.ensure_future(f.drain())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    second = asyncio.ensure_future(f.drain())
    await asyncio.sleep(0)
    f.resume_writing()
    await asyncio.wait_for(second, 0.1)
