"""Back-pressure for one transport, both ways (I/O); uvicorn's flow_control.py is the model.

The fast lane (a client connection) and the upstream client (an upstream connection) each
hold one. Reading pauses once however many reasons ask, and resumes when the owner says
so; writing is paused by the transport (its buffer passed the high-water mark) through
the protocol's ``pause_writing``/``resume_writing``, and ``drain`` waits for the resume.
Once the connection is lost, ``drain`` raises instead of waiting forever.
"""

from __future__ import annotations

import asyncio


class FlowControl:
    """The pause state of one transport, and the one waiter for it to drain."""

    __slots__ = ("_lost", "_waiter", "read_paused", "transport", "write_paused")

    def __init__(self, transport: asyncio.Transport | None = None) -> None:
        self.transport = transport  # set once the connection is made
        self._waiter: asyncio.Future[None] | None = None
        self._lost: str | None = None  # why the connection ended (drain raises it)
        self.read_paused = False
        self.write_paused = False

    def __repr__(self) -> str:
        shown = [n for n in ("read_paused", "write_paused") if getattr(self, n)]
        return f"<FlowControl {' '.join(shown) or 'flowing'}{' lost' if self._lost else ''}>"

    def pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and self.transport is not None:
            self.read_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def lost(self, why: str) -> None:
        """The connection ended: a ``drain`` waiting now, or later, raises."""
        self._lost = why
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError(why))

    async def drain(self) -> None:
        """Return once the transport takes writes again; ConnectionResetError when the
        connection is lost."""
        if self._lost is not None:
            raise ConnectionResetError(self._lost)
        if self.write_paused:
            waiter = self._waiter
            if waiter is None or waiter.done():  # done: its awaiter was cancelled
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter
