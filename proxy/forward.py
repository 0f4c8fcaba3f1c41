"""Forward one HTTP exchange: preflights answered here, everything else streamed (I/O).

The decisions come from the pure side (``cors``, ``headers``, ``diagnostics``); this
module only moves bytes and headers between the client (a ``Downstream``: the fast lane
or aiohttp's server) and the upstream client, and writes one log record per exchange.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

from proxy.diagnosis.error_body import MAX_CAPTURE, diagnose_body
from proxy.diagnosis.explain import advise, cookie_problems, credentials_mode
from proxy.diagnosis.repro import curl_commands
from proxy.diagnosis.unreachable import impostor
from proxy.errors import UpstreamBodyError, UpstreamError, UpstreamUnavailable
from proxy.generation import Generation
from proxy.http.downstream import Downstream, Replay
from proxy.http.probe import explain
from proxy.http.upstream import UpstreamClient, UpstreamResponse
from proxy.log.record import LineTemplate, Record
from proxy.policy.cors import PROXY_ERROR_HEADER, ActualDecision
from proxy.policy.headers import (
    HeaderList,
    response_head,
    upstream_request_headers,
)

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
MAX_CLOSED_RETRIES = 2  # a safe request whose connection closed unanswered goes again
SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})  # RFC 9110 9.2.1: no side effects
RETRY_STEP = 0.1  # seconds between connect attempts while the upstream restarts
RETRY_REASONS = frozenset({"connection refused", "connection failed"})  # connect-time only


class Log(Protocol):
    """Where the one line per exchange goes (app.LogSink)."""

    def record(self, rec: Record) -> None: ...
    def template(self, rec: Record) -> LineTemplate: ...
    def line(self, text: str) -> None: ...


class Forwarder:
    def __init__(self, current: Callable[[], Generation], client: UpstreamClient, log: Log) -> None:
        self.current = current
        self.client = client
        self.log = log
        self._conflicts_seen: set[tuple[str, str]] = set()
        self._cookie_warnings: set[str] = set()

    async def handle(self, request: Downstream) -> None:
        if not self.answer_now(request):
            await self.proxy(request)

    def answer_now(self, request: Downstream) -> bool:
        """Answer a preflight, which needs no await; False for anything else."""
        if request.method != "OPTIONS":
            return False
        origins = request.headers.getall("Origin", ())
        acrm = request.headers.getall("Access-Control-Request-Method", ())
        if not origins or not acrm:
            return False
        # Two Origin lines never come from a browser; joined they match no rule.
        self.preflight(request, self.current(), ", ".join(origins), ", ".join(acrm))
        return True

    async def proxy(self, request: Downstream) -> None:
        """Forward to the upstream and relay its answer (or explain why not)."""
        gen = self.current()
        started = time.monotonic()
        origins = request.headers.getall("Origin", ())
        origin = ", ".join(origins) if origins else None
        decision = gen.policy.actual(path=request.raw_path, origin=origin)
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
        try:
            await self.forward(request, gen, decision, rec)
        finally:
            rec.ms = (time.monotonic() - started) * 1000
            self.log.record(rec)

    # -- preflight ------------------------------------------------------------------------

    def preflight(self, request: Downstream, gen: Generation, origin: str, acrm: str) -> None:
        started = time.monotonic()
        acrh = request.headers.getall("Access-Control-Request-Headers", ())
        pna = request.headers.get("Access-Control-Request-Private-Network", "") == "true"
        d = gen.policy.preflight(
            path=request.raw_path,
            origin=origin,
            request_method=acrm,
            request_headers=",".join(acrh) if acrh else None,
            private_network=pna,
        )
        status = 204 if d.allowed else 403
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
        if not d.allowed:
            names = tuple(n.strip().lower() for n in ",".join(acrh).split(",") if n.strip())
            self._advise(request, gen, rec, acrm, names, False, True, 403, d.headers, d.fix)
            if gen.config.explain:
                rec.repro = _repro(request, origin, acrm, ",".join(acrh))
        try:
            if d.allowed:
                request.respond(204, d.headers)  # a cached tuple: its serialization is too
                request.may_replay(Replay(gen.number, d.headers, self.log.template(rec)))
            else:
                text = f"cors-proxy: preflight rejected: {d.reason}\n"
                request.respond(403, d.headers, text)
        finally:
            self.log.record(rec)

    def answer_again(self, replay: Replay, started: float) -> bool:
        """Log a preflight the fast lane answers again from ``replay`` (the same head as
        before); False, and no line, when a reload since may have changed the answer."""
        if replay.generation != self.current().number:
            return False
        self.log.line(replay.line.render((time.monotonic() - started) * 1000))
        return True

    # -- forwarding -----------------------------------------------------------------------

    async def forward(
        self, request: Downstream, gen: Generation, decision: ActualDecision, rec: Record
    ) -> None:
        cfg = gen.config
        raw = request.header_list()
        if raw is None:
            rec.status, rec.reason = 400, "request header is not valid UTF-8"
            return request.respond(400, [], "cors-proxy: a request header is not UTF-8\n")
        limit = cfg.max_body_bytes
        expect = request.headers.get("Expect", "").lower()
        if limit is not None and (request.content_length or 0) > limit:
            _too_large(request, decision, rec, limit)  # refused before a byte is read
            if expect == "100-continue":
                # The client holds the body back until told to send it, so nothing is
                # in flight: end the connection now instead of lingering to read it.
                await request.close_now()
            return None
        if expect:
            if expect != "100-continue":
                rec.status = 417
                return request.respond(417, [], "cors-proxy: unsupported Expect\n")
            if request.http11:
                await request.send_continue()
        headers = upstream_request_headers(
            raw,
            client_ip=request.remote,
            scheme=request.scheme,
            upstream_authority=gen.target.authority if cfg.host_header == "upstream" else None,
        )
        body = _body(request, limit)
        deadline = time.monotonic() + cfg.upstream_wait
        retried = False
        closes = 0  # closed-before-answer retries: few, so a server that always hangs up
        while True:  # ... gets its 502 at once, not after upstream_wait
            try:
                async with self.client.request(
                    request.method,
                    request.raw_path,
                    headers,
                    body,
                    idempotent=request.method in IDEMPOTENT,
                ) as up:
                    return await self.relay(request, gen, decision, up, rec, retried)
            except UpstreamUnavailable as exc:
                if isinstance(body, _LimitedBody) and body.exceeded:
                    assert limit is not None
                    return _too_large(request, decision, rec, limit)
                closes += exc.sent
                if not _may_retry(exc, request.method, body) or closes > MAX_CLOSED_RETRIES:
                    return await self.error_response(request, gen, exc, rec)
                if time.monotonic() + RETRY_STEP > deadline:
                    return await self.error_response(request, gen, exc, rec)
                retried = True
                await asyncio.sleep(RETRY_STEP)
            except UpstreamError as exc:
                return await self.error_response(request, gen, exc, rec)

    async def relay(
        self,
        request: Downstream,
        gen: Generation,
        decision: ActualDecision,
        up: UpstreamResponse,
        rec: Record,
        retried: bool,
    ) -> None:
        cfg = gen.config
        override = cfg.upstream_cors == "override"
        client_origin = f"{request.scheme}://{request.host}"
        head = response_head(
            up.headers,
            decision,
            override=override,
            upstream_origins=gen.target.aliases,
            client_origin=client_origin,
        )
        out = head.fields
        if decision.allowed and override and head.upstream_cors:
            self._report_conflict(head.upstream_cors, decision, rec)
        if rec.origin is not None and rec.origin != client_origin:
            self._browser_view(request, gen, decision, rec, up.status, out, head.cookies, override)
        rec.status = up.status
        if retried:
            rec.note = "served after waiting for the upstream to come back"
        capture = bytearray() if up.status >= 400 else None
        try:
            await request.start(up.status, up.reason, out)
            while chunk := await up.read():
                if capture is not None and len(capture) < MAX_CAPTURE:
                    capture += chunk[: MAX_CAPTURE - len(capture)]
                await request.write(chunk)
            await request.finish()
        except UpstreamBodyError as exc:
            rec.reason = f"{exc.reason}; the client got a truncated response"
            request.abort()
        except (ConnectionError, asyncio.CancelledError) as exc:
            rec.reason = "client disconnected"
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if capture is not None:
                upstream_acao = [
                    v for n, v in head.upstream_cors if n.lower() == "access-control-allow-origin"
                ]
                self._diagnose(up, bytes(capture), decision, upstream_acao, rec, gen)

    def _browser_view(
        self,
        request: Downstream,
        gen: Generation,
        decision: ActualDecision,
        rec: Record,
        status: int,
        out: Sequence[tuple[str, str]],
        cookies: Sequence[str],
        override: bool,
    ) -> None:
        """How Chromium will treat this cross-origin response, and the cookies in it."""
        # With override, our headers are right by construction (and tested in Chromium):
        # only refused origins and the upstream's own headers need the oracle.
        if not decision.allowed or not override:
            credentials = credentials_mode(request.headers)
            self._advise(
                request, gen, rec, request.method, (), credentials, False, status, out, decision.fix
            )
        if cookies and rec.origin is not None and decision.allowed:
            rule = gen.policy.rule_for(request.raw_path)
            for problem in cookie_problems(
                cookies,
                page_origin=rec.origin,
                proxy_origin=f"{request.scheme}://{request.host}",
                credentials_allowed=bool(rule and rule.allow_credentials and decision.allowed),
                rule=rule.name if rule else None,
            ):
                if problem not in self._cookie_warnings:
                    self._cookie_warnings.add(problem)  # once per distinct problem
                    rec.hints += (problem,)

    def _advise(
        self,
        request: Downstream,
        gen: Generation,
        rec: Record,
        method: str,
        unsafe: tuple[str, ...],
        credentials: bool,
        preflight: bool,
        status: int,
        headers: Sequence[tuple[str, str]],
        fix: str,
    ) -> None:
        rule = gen.policy.rule_for(request.raw_path)
        a = advise(
            url=f"{request.scheme}://{request.host}{request.raw_path}",
            origin=rec.origin or "",
            method=method,
            unsafe_header_names=unsafe,
            credentials=credentials,
            preflight=preflight,
            status=status,
            response_headers=headers,
            configured_origins=rule.origins if rule else (),
            fix=fix,
        )
        rec.verdict = a.verdict
        if a.verdict == "blocked":
            rec.console, rec.fix = a.console, a.fix
            rec.hints += a.hints

    def _diagnose(
        self,
        up: UpstreamResponse,
        body: bytes,
        decision: ActualDecision,
        upstream_acao: list[str],
        rec: Record,
        gen: Generation,
    ) -> None:
        def header(name: str) -> str | None:
            return next((v for n, v in up.headers if n.lower() == name), None)

        other = impostor(header("server"), gen.target.port)
        if other is not None:  # not the app at all: nothing else here is worth saying
            rec.diagnosis = other
            return

        found = diagnose_body(up.status, header("content-type"), header("content-encoding"), body)
        if found is not None:
            summary = found.summary
            if found.hint and found.kind == "werkzeug-generic":
                summary = summary.split(":", 1)[0]  # the stock description adds nothing
            rec.diagnosis = summary + (f" ({found.hint})" if found.hint else "")
        if decision.allowed and not upstream_acao:
            rec.note = (
                "without cors-proxy the browser would have reported a CORS error "
                "(the upstream sent no Access-Control-Allow-Origin) instead of this "
                f"{up.status}"
            )

    def _report_conflict(
        self, upstream_cors: Sequence[tuple[str, str]], decision: ActualDecision, rec: Record
    ) -> None:
        ours = dict(decision.headers)
        changes = []
        for name, value in upstream_cors:
            key = (name.lower(), value)
            if key in self._conflicts_seen:
                continue  # warn once per distinct value
            self._conflicts_seen.add(key)
            canon = next((k for k in ours if k.lower() == name.lower()), None)
            now = f"replaced with {ours[canon]!r}" if canon else "removed"
            changes.append(f"{name}: {value!r} {now}")
        if changes:
            rec.note = (
                f"upstream also sends its own CORS headers: {'; '.join(changes)} "
                "(upstream_cors: override; turn off the app's own CORS, e.g. flask-cors, "
                "or set upstream_cors: preserve)"
            )

    # -- the proxy's own answers ----------------------------------------------------------

    async def error_response(
        self, request: Downstream, gen: Generation, exc: UpstreamError, rec: Record
    ) -> None:
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
        hint = await explain(exc, gen.target.host, gen.target.port, cfg.connect_timeout)
        if hint:
            detail += f"; {hint}"
        body = {"error": exc.reason, "upstream": gen.config.upstream, "detail": detail}
        rec.status = exc.status
        rec.diagnosis = f"upstream {gen.config.upstream}: {exc.reason} ({detail})"
        request.respond(
            exc.status, headers, json.dumps(body) + "\n", content_type="application/json"
        )


def _cors_word(decision: ActualDecision, origin: str | None) -> str:
    if decision.rule is None:
        return "no-rule"
    if origin is None:
        return "no-origin"
    return "allowed" if decision.allowed else "denied"


def _repro(request: Downstream, origin: str, method: str, acrh: str | None) -> tuple[str, ...]:
    url = f"{request.scheme}://{request.host}{request.raw_path}"
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


def _body(request: Downstream, limit: int | None) -> AsyncIterator[bytes] | None:
    if not request.has_body:
        return None
    if limit is not None:
        return _LimitedBody(request.body(), limit)
    return request.body()


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


def _too_large(request: Downstream, decision: ActualDecision, rec: Record, limit: int) -> None:
    """413 with the rule's CORS headers, so the page sees the status, not a CORS error."""
    headers: HeaderList = list(decision.headers) if decision.allowed else []
    if decision.vary:
        headers.append(("Vary", "Origin"))
    rec.status = 413
    rec.reason = f"request body larger than limits.max_body_bytes ({limit} bytes)"
    text = f"cors-proxy: request body larger than limits.max_body_bytes ({limit} bytes)\n"
    request.respond(413, headers, text, close=True)
