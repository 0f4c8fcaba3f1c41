"""The dev server as the proxy's supervised child (I/O): its output on the proxy's log,
its upstream address, requests held until it listens, tracebacks joined to exchanges,
its end (issue 18).

The pure decisions live in ``diagnosis.console`` (what a line says) and
``diagnosis.blame`` (which exchange a traceback belongs to); this module runs the
process (``child``), feeds them lines and the clock, and writes the held log lines.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol

from proxy.devserver.child import Child
from proxy.diagnosis.blame import Blame, merge
from proxy.diagnosis.console import ConsoleReader, Reloaded, RequestLine, Startup, Traced, plain
from proxy.log.record import Record
from proxy.log.sink import LogSink

START_WAIT: Final = 60.0  # seconds a request is held while the dev server starts
PROBE_EVERY: Final = 0.05  # seconds between connects while waiting for it to listen
IDLE_EVERY: Final = 0.05  # seconds between looks at a traceback being read

Accepts = Callable[[str, int, float], Awaitable[bool]]


class Upstream(Protocol):
    """Where the dev server listens, once known (``ProxyServer.use_upstream``)."""

    def __call__(self, url: str) -> tuple[str, int]: ...


def source_name(argv: Sequence[str]) -> str:
    """The prefix of the child's lines: ``flask``, ``uvicorn``, ``app.py`` for
    ``python app.py``, ``flask`` for ``python -m flask run``."""
    name = os.path.basename(argv[0]) if argv else "devserver"
    if name.startswith("python") and len(argv) > 1:
        args = list(argv[1:])
        while args and args[0].startswith("-") and args[0] != "-m":
            args.pop(0)
        if len(args) >= 2 and args[0] == "-m":
            return args[1]
        if args:
            return os.path.basename(args[0])
    return name or "devserver"


class DevServer:
    """The supervised dev server. The forwarder calls ``begin``/``end`` around each
    exchange and ``wait_ready`` before its first upstream request."""

    def __init__(
        self,
        argv: Sequence[str],
        log: LogSink,
        *,
        upstream: str | None,
        upstream_from: str,
        use_upstream: Upstream,
        accepts: Accepts,
        name: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.name = name or source_name(argv)
        self.log = log
        self.upstream = upstream  # None: from the child's startup line
        self.upstream_from = upstream_from
        self._use_upstream = use_upstream
        self._accepts = accepts
        self._env = env
        self._cwd = cwd
        self.reader = ConsoleReader()
        self.blame = Blame(self.name)
        self.child: Child | None = None
        self.ready = False  # it accepted a connection once
        self.restarts = 0
        self.stopping = False
        self.exit_reason = ""
        self.exited = asyncio.Event()
        self._listening = asyncio.Event()  # or the child exited
        self._known = asyncio.Event()  # the upstream address is known
        self._held: dict[int, Record] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._tasks: set[asyncio.Future[Any]] = set()
        self.gone = ""  # "flask exited with code 1": it is not running any more
        self._waiting = 0  # requests held in wait_ready
        if upstream is not None:
            self._known.set()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the child (raises OSError when it cannot be run)."""
        terminal = self.log.color
        columns = _columns(self.log) - len(self.name) - 3 if terminal else 0
        self.child = Child(
            self.argv,
            on_line=self._line,
            on_exit=self._exited,
            terminal=terminal,
            columns=columns,
            env=self._env,
            cwd=self._cwd,
        )
        self.log.message(f"started {self.name} (pid {self.child.pid}): {shlex.join(self.argv)}")
        if self.upstream is not None:
            self.log.message(f"{self.name}: upstream {self.upstream} ({self.upstream_from})")
        else:
            self.log.message(
                f"{self.name}: upstream from its startup line "
                "(the address it prints; --upstream or the config's upstream to choose one)"
            )
        self._spawn(self._wait_listening())

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self, hurry: asyncio.Event | None = None) -> None:
        """SIGINT to its process group, then SIGTERM, then SIGKILL (a set ``hurry``
        goes straight to SIGKILL)."""
        self.stopping = True
        child = self.child
        if child is None:
            return
        first = True

        def step(sig: int) -> None:
            nonlocal first
            name = signal.Signals(sig).name
            if first:
                self.log.message(f"stopping {self.name} ({name} to its process group)")
            else:
                self.log.message(f"{self.name} is still running: {name}")
            first = False

        if child.group_alive():
            await child.stop(on_step=step, hurry=hurry)
        else:
            child.release_watchdog()
        for task in list(self._tasks):
            task.cancel()
        self._release(drain=True)

    def _exited(self, code: int) -> None:
        for event in self.reader.close():
            self._event(event, time.monotonic())
        how = _how(code)
        words = self.reader.last_words()
        self.exit_reason = how + (f": {words}" if words else "")
        now = time.monotonic()
        if self.stopping:
            self.log.message(f"{self.name} stopped ({how})")
        else:
            self.log.message(f"{self.name} {self.exit_reason}")
            self.blame.child_exited(how, now)
            # What else it started (its reloader's server, workers) goes with it.
            if self.child is not None and self.child.group_alive():
                self._spawn(self.child.stop())
            elif self.child is not None:
                self.child.release_watchdog()
        self.gone = f"{self.name} {how}"
        self._listening.set()
        self._known.set()
        self._release()
        self.exited.set()

    @property
    def returncode(self) -> int | None:
        return None if self.child is None else self.child.returncode

    def exit_code(self) -> int:
        """The proxy's exit code after the child ended on its own."""
        code = self.returncode or 0
        return 128 - code if code < 0 else code

    # -- its output -----------------------------------------------------------------------

    def _line(self, stream: str, text: str) -> None:
        self.log.output(self.name, stream, text)
        now = time.monotonic()
        self.blame.output(now)
        for event in self.reader.feed(plain(text), now, traceback=stream == "stderr"):
            self._event(event, now)
        self._schedule(now)

    def _event(self, event: object, now: float) -> None:
        if isinstance(event, RequestLine):
            self.blame.request_line(event, now)
        elif isinstance(event, Traced):
            self.blame.traceback(event, now)
        elif isinstance(event, Startup):
            self._startup(event)
        elif isinstance(event, Reloaded):
            self.restarts += 1

    def _startup(self, event: Startup) -> None:
        if self.upstream is None:
            self.upstream = event.url
            self.upstream_from = f"from its startup line: {event.line!r}"
            self._use_upstream(event.url)
            self.log.message(f"{self.name}: upstream {event.url} ({self.upstream_from})")
            self._known.set()
        elif _authority(event.url) != _authority(self.upstream) and not self.ready:
            self.log.message(
                f"{self.name} says it listens on {event.url}, but the upstream is "
                f"{self.upstream} ({self.upstream_from}); requests go to {self.upstream}"
            )

    async def _wait_listening(self) -> None:
        await self._known.wait()
        assert self.child is not None
        while self.child.running and self.upstream is not None:
            host, port = self._use_upstream(self.upstream)
            if await self._accepts(host, port, 0.5):
                took = time.monotonic() - self.child.started
                held = self._waiting
                self.ready = True
                self.log.message(
                    f"{self.name} is listening on {self.upstream} ({took:.2f} s after start)"
                    + (f"; {held} held request(s) go through now" if held else "")
                )
                self._listening.set()
                return
            await asyncio.sleep(PROBE_EVERY)

    async def wait_ready(self) -> str | None:
        """Hold a request until the dev server listens: None, or why it will not."""
        if self.ready:
            return None
        if not self.gone:
            self._waiting += 1
            try:
                async with asyncio.timeout(START_WAIT):
                    await self._listening.wait()
            except TimeoutError:
                return f"{self.name} did not listen within {START_WAIT:g} s" + (
                    "" if self.upstream else " (no startup line with its address yet)"
                )
            finally:
                self._waiting -= 1
        return None if self.ready else self.gone

    # -- exchanges ------------------------------------------------------------------------

    def begin(self, rec: Record, started: float) -> None:
        self.blame.begin(id(rec), rec.method, rec.path, started)

    def end(self, rec: Record) -> bool:
        """True when the line waits for a traceback (written later by this object)."""
        now = time.monotonic()
        if not self.blame.end(id(rec), rec.status, now):
            return False
        self._held[id(rec)] = rec
        self._release()
        if id(rec) in self._held:
            self._schedule(now)
        return True

    def forget(self, rec: Record) -> None:
        self.blame.forget(id(rec))
        self._held.pop(id(rec), None)

    def _schedule(self, now: float) -> None:
        when = self.blame.next_check(now)
        if self.reader.busy:
            when = min(when or now + IDLE_EVERY, now + IDLE_EVERY)
        if when is None:
            return
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer_at = when
        self._timer = loop.call_at(loop.time() + max(0.0, when - now), self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = time.monotonic()
        for event in self.reader.idle(now):
            self._event(event, now)
        self._release()
        self._schedule(now)

    def _release(self, drain: bool = False) -> None:
        now = time.monotonic()
        found = self.blame.drain() if drain else self.blame.due(now, reading=self.reader.busy)
        for key, text in found:
            rec = self._held.pop(key, None)
            if rec is None:
                continue
            if text:
                rec.diagnosis = merge(rec.diagnosis, text)
            self.log.record(rec)
        if drain:
            for rec in self._held.values():
                self.log.record(rec)
            self._held.clear()

    # -- health ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        child = self.child
        return {
            "command": shlex.join(self.argv),
            "name": self.name,
            "pid": child.pid if child else None,
            "running": bool(child and child.running),
            "listening": self.ready,
            "upstream": self.upstream,
            "restarts": self.restarts,
            "exit_code": child.returncode if child else None,
        }


def _how(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


def _authority(url: str) -> str:
    return url.split("://", 1)[-1].rstrip("/")


def _columns(log: LogSink) -> int:
    try:
        return os.get_terminal_size(log.stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0
