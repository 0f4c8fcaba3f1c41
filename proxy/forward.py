"""Forward one HTTP exchange: preflights answered here, everything else streamed (I/O).

The decisions come from the pure layers (``policy.cors``, ``policy.headers``, and
``diagnosis.explain`` for what the log line says); this module only moves bytes and
headers between the client (a ``RequestView`` and a ``ResponseSink``, from the fast lane
or aiohttp's server) and the upstream client, and writes one log record per exchange. A
fast-lane request comes with its ``RequestPlan`` (proxy/generation.py): what its head
means was worked out once per config generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol
from urllib.parse import unquote

from proxy.diagnosis.error_body import MAX_CAPTURE
from proxy.diagnosis.explain import Explainer, Seen, credentials_mode
from proxy.diagnosis.repro import curl_commands
from proxy.errors import UpstreamBodyError, UpstreamError, UpstreamUnavailable
from proxy.export.learn import Observation
from proxy.export.report import actual_report, preflight_report
from proxy.generation import Generation, RequestPlan, ResponsePlan
from proxy.http.aiohttp_server import AiohttpRequest
from proxy.http.downstream import Fields, Replay, RequestView, ResponseSink
from proxy.http.probe import unreachable_hint
from proxy.http.upstream import UpstreamResponse
from proxy.inspector.ring import MAX_HEAD_BYTES, HeaderItems, Ring, bounded_fields
from proxy.log.record import CorsWord, LineStart, LineTemplate, Record
from proxy.policy.cors import PROXY_ERROR_HEADER, ActualDecision
from proxy.policy.headers import HeaderList, upstream_request_headers

MAX_CLOSED_RETRIES = 2  # a safe request whose connection closed unanswered: 3 sends at most
SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})  # RFC 9110 9.2.1: no side effects
RETRY_STEP = 0.1  # seconds between connect attempts while the upstream restarts
RETRY_REASONS = frozenset({"connection refused", "connection failed"})  # connect-time only
# Characters of the Origin field (its lines joined) that are matched and logged: no browser
# sends one this long, so a longer one is cut (and never allowed) instead of being kept.
MAX_ORIGIN = 1024


class Log(Protocol):
    """Where the one line per exchange goes (``proxy.log.sink.LogSink``)."""

    def record(self, rec: Record, start: LineStart | None = None) -> None: ...
    def start(self, rec: Record) -> LineStart: ...
    def template(self, rec: Record, start: LineStart | None = None) -> LineTemplate: ...
    def line(self, text: str) -> None: ...


class Watch(Protocol):
    """Watches the exchanges of a supervised dev server (devserver.DevServer): holds
    requests until it listens, and joins its tracebacks to the exchanges' lines."""

    ready: bool
    gone: str  # why it is not running any more ("flask exited with code 1"), or ""

    async def wait_ready(self) -> str | None: ...
    def begin(self, rec: Record, started: float) -> None: ...
    def end(self, rec: Record) -> bool: ...  # True: it writes the line itself, later
    def forget(self, rec: Record) -> None: ...


Sent = Sequence[tuple[str, str]]  # the response fields an exchange sent, for the inspector


class Forwarder:
    def __init__(
        self,
        current: Callable[[], Generation],
        log: Log,
        observe: Callable[[Observation], None] | None = None,
        ring: Ring | None = None,
    ) -> None:
        self.current = current
        self.log = log
        self.explainer = Explainer()  # what the log has said already (bounded)
        self.observe = observe  # learning mode: every allowed cross-origin exchange
        self.ring = ring  # the inspector's memory of recent exchanges; None: it is off
        self.last_failure: dict[str, object] | None = None  # the upstream's, for the page
        self.watch: Watch | None = None
        # Exchanges in flight, by id(record): (record, start, task). Shutdown names them,
        # and writes the lines of those it cuts off.
        self.in_flight: dict[int, tuple[Record, float, asyncio.Task[Any] | None]] = {}
        self._idle: asyncio.Event | None = None  # set when in_flight empties (shutdown)

    def track(self, rec: Record, started: float) -> int:
        key = id(rec)
        self.in_flight[key] = (rec, started, asyncio.current_task())
        if self.watch is not None:
            self.watch.begin(rec, started)
        return key

    def done(self, key: int, rec: Record, start: LineStart | None = None) -> None:
        """Write the exchange's line, unless shutdown already did (it cut it off) or the
        dev server's watch writes it later (it waits for a traceback)."""
        if self.in_flight.pop(key, None) is not None and (
            self.watch is None or not self.watch.end(rec)
        ):
            self.log.record(rec, start)
        if self._idle is not None and not self.in_flight:
            self._idle.set()

    async def wait_idle(self, limit: float) -> None:
        """Wait up to ``limit`` seconds for the exchanges in flight to end."""
        if not self.in_flight:
            return
        self._idle = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await self._idle.wait()

    def cut_off(self, why: str) -> int:
        """End every exchange in flight now, each with its line; returns how many."""
        now = time.monotonic()
        flights, self.in_flight = self.in_flight, {}
        me = asyncio.current_task()
        for rec, started, task in flights.values():
            rec.ms = (now - started) * 1000
            rec.reason = f"{rec.reason}; {why}" if rec.reason else why
            if self.watch is not None:
                self.watch.forget(rec)
            self.log.record(rec)
            if task is not None and task is not me:
                task.cancel()
        return len(flights)

    async def serve(self, request: RequestView, response: ResponseSink) -> None:
        """One exchange: a preflight answered here, anything else forwarded."""
        if not self.answer_now(request, response):
            await self.forward(request, response)

    def answer_now(
        self, request: RequestView, response: ResponseSink, plan: RequestPlan | None = None
    ) -> Replay | bool:
        """Answer a preflight, which needs no await; False for anything else. For an
        allowed one with a ``plan``: its ``Replay``, the answer that every request with
        the same head gets under this generation (the fast lane sends it again)."""
        if request.method != "OPTIONS":
            return False
        origin = _origin(request)
        acrm = request.headers.getall("Access-Control-Request-Method", ())
        if origin is None or not acrm:
            return False
        gen = plan.generation if plan is not None else self.current()
        replay = self.answer_preflight(request, response, gen, origin, ", ".join(acrm), plan)
        return replay or True

    async def forward(
        self, request: RequestView, response: ResponseSink, plan: RequestPlan | None = None
    ) -> None:
        """Forward a request to the upstream and relay its answer (or answer why not),
        then write the exchange's log line."""
        started = time.monotonic()
        if plan is None:
            gen = self.current()
            origin = _origin(request)
            decision = gen.policy.actual(path=request.raw_path, origin=origin)
        else:
            gen = plan.generation
            cached = plan.actual
            if cached is None:
                origin = _origin(request)
                decision = gen.policy.actual(path=request.raw_path, origin=origin)
                cached = plan.actual = (origin, decision)
            origin, decision = cached
        rec = Record(
            request.method,
            request.raw_path,
            0,
            origin,
            _cors_word(decision, origin),
            decision.rule,
            0.0,
            reason=decision.reason if origin is not None and decision.rule else "",
        )
        if gen.config.explain and rec.cors == "denied":
            rec.repro = _repro(request, origin or "", request.method, None)
        key = self.track(rec, started)
        sent = None
        try:
            sent = await self.send_upstream(request, response, gen, decision, rec, plan)
        finally:
            ended = time.monotonic()
            rec.ms = (ended - started) * 1000
            start = None
            if plan is not None:
                start = plan.line
                if start is None:
                    start = plan.line = self.log.start(rec)
            self.done(key, rec, start)
            if self.ring is not None:  # the same record: a traceback joined later shows
                self.ring.add(rec, _kept_request(request), sent, ended)

    # -- preflight ------------------------------------------------------------------------

    def answer_preflight(
        self,
        request: RequestView,
        response: ResponseSink,
        gen: Generation,
        origin: str,
        acrm: str,
        plan: RequestPlan | None = None,
    ) -> Replay | None:
        """A preflight's 204 or 403; for an allowed one with a ``plan``, its replay."""
        started = time.monotonic()
        acrh = request.headers.getall("Access-Control-Request-Headers", ())
        d = plan.preflight if plan is not None else None
        if d is None:
            pna = request.headers.get("Access-Control-Request-Private-Network", "") == "true"
            d = gen.policy.preflight(
                path=request.raw_path,
                origin=origin,
                request_method=acrm,
                request_headers=",".join(acrh) if acrh else None,
                private_network=pna,
            )
            if plan is not None:
                plan.preflight = d
        status = d.status
        rec = Record(
            "OPTIONS",
            request.raw_path,
            status,
            origin,
            "preflight-ok" if d.allowed else "preflight-denied",
            d.rule,
            (time.monotonic() - started) * 1000,
            reason=d.reason,
            note=f"for {acrm}" + (f" with {','.join(acrh)}" if acrh else ""),
        )
        if d.allowed and (self.observe is not None or gen.candidate is not None):
            self._preflight_seen(request, gen, rec, origin, acrm, acrh)
        if not d.allowed:
            names = tuple(n.strip().lower() for n in ",".join(acrh).split(",") if n.strip())
            self.explainer.explain(
                Seen(
                    method=acrm,
                    url=_url(request),
                    origin=origin,
                    client_origin=f"{request.scheme}://{request.host}",
                    request_headers=request.headers,
                    rule=d.matched,
                    allowed=False,
                    origin_allowed=d.origin_allowed,
                    fix=d.fix,
                    status=status,
                    response_headers=d.headers,
                    preflight=True,
                    unsafe_headers=names,
                )
            ).apply(rec)
            if gen.config.explain:
                rec.repro = _repro(request, origin, acrm, ",".join(acrh))
        try:
            if not d.allowed:
                text = f"cors-proxy: preflight rejected: {d.reason}\n" if status == 403 else None
                response.respond(status, d.headers, text)
                return None
            fields = Fields(d.headers)
            response.respond(204, fields)
            if plan is None:
                return None
            return Replay(204, fields, self.log.template(rec), rec, request.headers)
        finally:
            self.log.record(rec)
            if self.ring is not None:
                self.ring.add(rec, _kept_request(request), d.headers, time.monotonic())

    def _preflight_seen(
        self,
        request: RequestView,
        gen: Generation,
        rec: Record,
        origin: str,
        acrm: str,
        acrh: Sequence[str],
    ) -> None:
        """An allowed preflight, for learning mode and report-only rules."""
        pna = request.headers.get("Access-Control-Request-Private-Network", "") == "true"
        if self.observe is not None:
            names = tuple(n.strip() for n in ",".join(acrh).split(",") if n.strip())
            path = _rule_path(request.raw_path)
            self.observe(Observation(origin, path, acrm, names, (), False, pna))
        if gen.candidate is not None:
            rec.report = preflight_report(
                gen.candidate,
                url=_url(request),
                path=request.raw_path,
                origin=origin,
                method=acrm,
                request_headers=",".join(acrh) if acrh else None,
                private_network=pna,
            )

    # -- forwarding -----------------------------------------------------------------------

    async def send_upstream(
        self,
        request: RequestView,
        response: ResponseSink,
        gen: Generation,
        decision: ActualDecision,
        rec: Record,
        plan: RequestPlan | None = None,
    ) -> Sent | None:
        """Send the request upstream, retrying while it restarts (``upstream_wait``)."""
        cfg = gen.config
        raw = request.header_list()
        if raw is None:
            rec.status, rec.reason = 400, "request header is not valid UTF-8"
            response.respond(400, [], "cors-proxy: a request header is not UTF-8\n")
            return None
        limit = cfg.max_body_bytes
        expect = request.headers.get("Expect", "").lower()
        if limit is not None and (request.content_length or 0) > limit:
            _too_large(response, decision, rec, limit)  # refused before a byte is read
            if expect == "100-continue":
                # The client holds the body back until told to send it, so nothing is
                # in flight: end the connection now instead of lingering to read it.
                await response.close_now()
            return None
        if expect:
            if expect != "100-continue":
                rec.status = 417
                response.respond(417, [], "cors-proxy: unsupported Expect\n")
                return None
            if request.http11:
                await response.send_continue()
        if self.watch is not None and not self.watch.ready:
            why = await self.watch.wait_ready()  # held while the dev server starts
            if why is not None:
                exc = UpstreamUnavailable("dev server not listening", why)
                return await self.answer_unreachable(request, response, gen, exc, rec)
            if self.current() is not gen:  # its address came from its startup line
                gen, plan = self.current(), None
                cfg = gen.config
        headers: HeaderList = []
        head: bytes | None
        upstream = plan.upstream if plan is not None else None
        if upstream is not None and upstream[0] == request.remote:
            head = upstream[1]  # made before for this head and client
        else:
            headers, head = self._upstream_request(request, gen, raw, plan)
        body = _body(request, limit)
        deadline = time.monotonic() + cfg.upstream_wait
        retried = False
        closes = 0  # closed-before-answer retries: few, so a server that always hangs up
        while True:  # ... gets its 502 at once, not after upstream_wait
            try:
                async with gen.client.request(
                    request.method,
                    request.raw_path,
                    headers,
                    body,
                    head=head,
                ) as up:
                    return await self.relay_response(
                        request, response, gen, decision, up, rec, retried
                    )
            except UpstreamUnavailable as exc:
                if isinstance(body, _LimitedBody) and body.exceeded:
                    assert limit is not None
                    _too_large(response, decision, rec, limit)
                    return None
                closes += exc.sent
                if not _may_retry(exc, request.method, body) or closes > MAX_CLOSED_RETRIES:
                    return await self.answer_unreachable(request, response, gen, exc, rec)
                if self.watch is not None and self.watch.gone:  # it exited: no restart
                    return await self.answer_unreachable(request, response, gen, exc, rec)
                if exc.reused:
                    continue  # a pooled connection had gone stale: again at once, on a new one
                if time.monotonic() + RETRY_STEP > deadline:
                    return await self.answer_unreachable(request, response, gen, exc, rec)
                retried = True
                await asyncio.sleep(RETRY_STEP)
            except UpstreamError as exc:
                return await self.answer_unreachable(request, response, gen, exc, rec)

    @staticmethod
    def _upstream_request(
        request: RequestView, gen: Generation, fields: HeaderList, plan: RequestPlan | None
    ) -> tuple[HeaderList, bytes | None]:
        """The headers to send upstream and, for a fast-lane request, the whole request
        head, made once per head and client address (the plan caches it)."""
        cfg = gen.config
        headers = upstream_request_headers(
            fields,
            client_ip=request.remote,
            scheme=request.scheme,
            upstream_authority=gen.target.authority if cfg.host_header == "upstream" else None,
        )
        if plan is None:
            return headers, None
        head = gen.client.head(request.method, request.raw_path, headers, body=False)
        plan.upstream = (request.remote, head)
        return headers, head

    async def relay_response(
        self,
        request: RequestView,
        response: ResponseSink,
        gen: Generation,
        decision: ActualDecision,
        up: UpstreamResponse,
        rec: Record,
        retried: bool,
    ) -> Sent:
        """Stream the upstream's answer to the client with the rule's CORS headers."""
        cfg = gen.config
        override = cfg.upstream_cors == "override"
        client_origin = f"{request.scheme}://{request.host}"
        head, date = gen.response_plan(up.headers, decision, client_origin)
        seen = self.observe is not None or gen.candidate is not None
        if seen and decision.allowed and rec.origin not in (None, client_origin):
            self._actual_seen(request, gen, rec, up.status, head.fields.items, bool(head.cookies))
        rec.status = up.status
        capture = bytearray() if up.status >= 400 else None
        try:
            await response.start(up.status, up.reason, head.fields, date)
            while chunk := await up.read():
                if capture is not None and len(capture) < MAX_CAPTURE:
                    capture += chunk[: MAX_CAPTURE - len(capture)]
                await response.write(chunk)
            await response.finish()
        except UpstreamBodyError as exc:
            rec.reason = f"{exc.reason}; the client got a truncated response"
            response.abort()
        except (ConnectionError, asyncio.CancelledError) as exc:
            rec.reason = "client disconnected"
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if not Explainer.quiet(
                decision.allowed, override, up.status, head.upstream_cors, head.cookies, retried
            ):
                self._explain(request, gen, decision, up, rec, head, capture, retried)
        sent = head.fields.items
        return sent if head.size <= MAX_HEAD_BYTES else bounded_fields(sent)

    def _actual_seen(
        self,
        request: RequestView,
        gen: Generation,
        rec: Record,
        status: int,
        sent: Sequence[tuple[str, str]],
        cookie_set: bool,
    ) -> None:
        """An allowed cross-origin response, for learning mode and report-only rules."""
        origin = rec.origin or ""
        credentials = credentials_mode(request.headers)
        if self.observe is not None:
            self.observe(
                Observation(
                    origin,
                    _rule_path(request.raw_path),
                    request.method,
                    (),
                    tuple(n for n, _ in sent),
                    credentials or cookie_set,
                )
            )
        if gen.candidate is not None:
            rec.report = actual_report(
                gen.candidate,
                url=_url(request),
                path=request.raw_path,
                origin=origin,
                method=request.method,
                credentials=credentials,
                status=status,
                sent=sent,
            )

    def _explain(
        self,
        request: RequestView,
        gen: Generation,
        decision: ActualDecision,
        up: UpstreamResponse,
        rec: Record,
        head: ResponsePlan,
        capture: bytearray | None,
        retried: bool,
    ) -> None:
        client_origin = f"{request.scheme}://{request.host}"
        self.explainer.explain(
            Seen(
                method=request.method,
                url=f"{client_origin}{request.raw_path}",
                origin=rec.origin,
                client_origin=client_origin,
                request_headers=request.headers,
                rule=decision.matched,
                allowed=decision.allowed,
                origin_allowed=decision.allowed,
                fix=decision.fix,
                status=up.status,
                response_headers=head.fields.items,
                override=gen.config.upstream_cors == "override",
                upstream_headers=up.headers,
                upstream_cors=head.upstream_cors,
                cookies=head.cookies,
                body=None if capture is None else bytes(capture),
                upstream_port=gen.target.port,
                retried=retried,
                sent_cookies="; ".join(request.headers.getall("Cookie", ())),
            )
        ).apply(rec)

    # -- the proxy's own answers ----------------------------------------------------------

    async def answer_unreachable(
        self,
        request: RequestView,
        response: ResponseSink,
        gen: Generation,
        exc: UpstreamError,
        rec: Record,
    ) -> Sent:
        """502/504 with the rule's CORS headers when the upstream cannot be reached."""
        decision = gen.policy.actual(path=request.raw_path, origin=rec.origin, error=True)
        headers: HeaderList = [(PROXY_ERROR_HEADER, exc.reason)]
        if decision.allowed:
            headers.extend(decision.headers)
            if decision.expose_all:
                headers.append(("Access-Control-Expose-Headers", PROXY_ERROR_HEADER))
        if decision.vary:
            headers.append(("Vary", "Origin"))
        detail = exc.detail or exc.reason
        cfg = gen.config
        hint = await unreachable_hint(exc, gen.target.host, gen.target.port, cfg.connect_timeout)
        if hint:
            detail += f"; {hint}"
        body = {"error": exc.reason, "upstream": gen.config.upstream, "detail": detail}
        rec.status = exc.status
        said = f" ({detail})" if detail != exc.reason else ""  # no "refused (refused)"
        rec.diagnosis = f"upstream {gen.config.upstream}: {exc.reason}{said}"
        if decision.allowed and rec.origin is not None:
            client_origin = f"{request.scheme}://{request.host}"
            if rec.origin != client_origin and self.observe is not None:
                credentials = credentials_mode(request.headers)
                path = _rule_path(request.raw_path)
                self.observe(Observation(rec.origin, path, request.method, (), (), credentials))
        self.last_failure = {"time": time.time(), "reason": exc.reason, "detail": detail}
        response.respond(
            exc.status, headers, json.dumps(body) + "\n", content_type="application/json"
        )
        return headers


def _kept_request(request: RequestView) -> HeaderItems | Sent:
    """The request's headers for the inspector: the fast lane's are small by
    construction (its heads are at most MAX_HEAD_BYTES); aiohttp's are copied, bounded."""
    if isinstance(request, AiohttpRequest):
        return bounded_fields(request.headers.items())
    return request.headers


def _url(request: RequestView) -> str:
    """The URL the client asked for, as the page's fetch() named it."""
    return f"{request.scheme}://{request.host}{request.raw_path}"


def _rule_path(raw_path: str) -> str:
    """The path rules match: percent-decoded, without the query."""
    return unquote(raw_path.partition("?")[0], errors="surrogateescape")


def _cors_word(decision: ActualDecision, origin: str | None) -> CorsWord:
    if decision.rule is None:
        return "no-rule"
    if origin is None:
        return "no-origin"
    return "allowed" if decision.allowed else "denied"


def _repro(request: RequestView, origin: str, method: str, acrh: str | None) -> tuple[str, ...]:
    url = _url(request)
    headers = list(request.headers.items())
    return tuple(
        curl_commands(
            url=url, origin=origin, method=method, headers=headers, preflight_headers=acrh
        )
    )


def _may_retry(exc: UpstreamUnavailable, method: str, body: object) -> bool:
    """Werkzeug's reloader closes the port for a moment after each save: wait for it when
    nothing of the request reached the upstream (a connect reset while the old listener
    goes away is "connection failed"). A connection closed before a byte of an answer
    (the old server going away under it) is retried only for a safe method without a
    body: re-sending it changes nothing upstream (nginx's proxy_next_upstream agrees)."""
    if not exc.sent:
        return exc.reason in RETRY_REASONS
    return exc.reason == "upstream closed the connection" and method in SAFE and body is None


def _origin(request: RequestView) -> str | None:
    """The request's Origin, its lines joined (two never come from a browser: joined,
    they match no rule), and cut after ``MAX_ORIGIN`` characters."""
    origins = request.headers.getall("Origin", ())
    if not origins:
        return None
    if len(origins) == 1 and len(origins[0]) <= MAX_ORIGIN:
        return origins[0]
    kept, length = [], 0
    for value in origins:  # never joins more than the cut keeps
        kept.append(value)
        length += len(value) + 2
        if length > MAX_ORIGIN:
            break
    joined = ", ".join(kept)
    return joined if len(joined) <= MAX_ORIGIN else joined[:MAX_ORIGIN] + "..."


def _body(request: RequestView, limit: int | None) -> AsyncIterator[bytes] | None:
    chunks = request.body()
    if chunks is None or limit is None:
        return chunks
    return _LimitedBody(chunks, limit)


class BodyTooLarge(ConnectionError):
    """A request body of unknown length went past ``limits.max_body_bytes``. A
    ConnectionError, so either upstream client aborts the upstream request (never a
    short body that looks complete) and reports it as UpstreamUnavailable."""


class _LimitedBody:
    """The request body, streamed, counting; raises BodyTooLarge past ``limit`` bytes."""

    def __init__(self, chunks: AsyncIterator[bytes], limit: int) -> None:
        self.chunks = chunks
        self.limit = limit
        self.seen = 0
        self.exceeded = False

    def __aiter__(self) -> _LimitedBody:
        return self

    async def __anext__(self) -> bytes:
        chunk = await anext(self.chunks)  # StopAsyncIteration at the end
        self.seen += len(chunk)
        if self.seen > self.limit:
            self.exceeded = True
            raise BodyTooLarge(f"request body over {self.limit} bytes")
        return chunk


def _too_large(response: ResponseSink, decision: ActualDecision, rec: Record, limit: int) -> None:
    """413 with the rule's CORS headers, so the page sees the status, not a CORS error."""
    headers: HeaderList = list(decision.headers) if decision.allowed else []
    if decision.vary:
        headers.append(("Vary", "Origin"))
    rec.status = 413
    rec.reason = f"request body larger than limits.max_body_bytes ({limit} bytes)"
    text = f"cors-proxy: request body larger than limits.max_body_bytes ({limit} bytes)\n"
    response.respond(413, headers, text, close=True)
