"""Forward one HTTP exchange: preflights answered here, everything else streamed (I/O).

The decisions come from the pure side (``cors``, ``headers``, ``diagnostics``); this
module only moves bytes and headers between the client (a ``Downstream``: the fast lane
or aiohttp's server) and the upstream client, and writes one log record per exchange.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from proxy.diagnosis.error_body import MAX_CAPTURE
from proxy.diagnosis.explain import Explainer, Seen
from proxy.diagnosis.repro import curl_commands
from proxy.errors import UpstreamBodyError, UpstreamError, UpstreamUnavailable
from proxy.generation import Generation
from proxy.http.downstream import Downstream, Replay
from proxy.http.probe import unreachable_hint
from proxy.http.upstream import UpstreamClient, UpstreamResponse
from proxy.log.record import CorsWord, LineTemplate, Record
from proxy.policy.cors import PROXY_ERROR_HEADER, ActualDecision
from proxy.policy.headers import (
    HeaderList,
    ResponseHead,
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
        self.explainer = Explainer()  # what the log has said already (bounded)

    async def serve(self, request: Downstream) -> None:
        """One exchange: a preflight answered here, anything else forwarded."""
        if not self.answer_now(request):
            await self.forward(request)

    def answer_now(self, request: Downstream) -> bool:
        """Answer a preflight, which needs no await; False for anything else."""
        if request.method != "OPTIONS":
            return False
        origins = request.headers.getall("Origin", ())
        acrm = request.headers.getall("Access-Control-Request-Method", ())
        if not origins or not acrm:
            return False
        # Two Origin lines never come from a browser; joined they match no rule.
        self.answer_preflight(request, self.current(), ", ".join(origins), ", ".join(acrm))
        return True

    async def forward(self, request: Downstream) -> None:
        """Forward a request to the upstream and relay its answer (or answer why not),
        then write the exchange's log line."""
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
            await self.send_upstream(request, gen, decision, rec)
        finally:
            rec.ms = (time.monotonic() - started) * 1000
            self.log.record(rec)

    # -- preflight ------------------------------------------------------------------------

    def answer_preflight(
        self, request: Downstream, gen: Generation, origin: str, acrm: str
    ) -> None:
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
            self.explainer.explain(
                Seen(
                    method=acrm,
                    url=f"{request.scheme}://{request.host}{request.raw_path}",
                    origin=origin,
                    client_origin=f"{request.scheme}://{request.host}",
                    request_headers=request.headers,
                    rule=gen.policy.rule_for(request.raw_path),
                    allowed=False,
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

    async def send_upstream(
        self, request: Downstream, gen: Generation, decision: ActualDecision, rec: Record
    ) -> None:
        """Send the request upstream, retrying while it restarts (``upstream_wait``)."""
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
                    return await self.relay_response(request, gen, decision, up, rec, retried)
            except UpstreamUnavailable as exc:
                if isinstance(body, _LimitedBody) and body.exceeded:
                    assert limit is not None
                    return _too_large(request, decision, rec, limit)
                closes += exc.sent
                if not _may_retry(exc, request.method, body) or closes > MAX_CLOSED_RETRIES:
                    return await self.answer_unreachable(request, gen, exc, rec)
                if time.monotonic() + RETRY_STEP > deadline:
                    return await self.answer_unreachable(request, gen, exc, rec)
                retried = True
                await asyncio.sleep(RETRY_STEP)
            except UpstreamError as exc:
                return await self.answer_unreachable(request, gen, exc, rec)

    async def relay_response(
        self,
        request: Downstream,
        gen: Generation,
        decision: ActualDecision,
        up: UpstreamResponse,
        rec: Record,
        retried: bool,
    ) -> None:
        """Stream the upstream's answer to the client with the rule's CORS headers."""
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
        rec.status = up.status
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
            if not Explainer.quiet(
                decision.allowed, override, up.status, head.upstream_cors, head.cookies, retried
            ):
                self._explain(request, gen, decision, up, rec, head, capture, retried)

    def _explain(
        self,
        request: Downstream,
        gen: Generation,
        decision: ActualDecision,
        up: UpstreamResponse,
        rec: Record,
        head: ResponseHead,
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
                rule=gen.policy.rule_for(request.raw_path),
                allowed=decision.allowed,
                fix=decision.fix,
                status=up.status,
                response_headers=head.fields,
                override=gen.config.upstream_cors == "override",
                upstream_headers=up.headers,
                upstream_cors=head.upstream_cors,
                cookies=head.cookies,
                body=None if capture is None else bytes(capture),
                upstream_port=gen.target.port,
                retried=retried,
            )
        ).apply(rec)

    # -- the proxy's own answers ----------------------------------------------------------

    async def answer_unreachable(
        self, request: Downstream, gen: Generation, exc: UpstreamError, rec: Record
    ) -> None:
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
        rec.diagnosis = f"upstream {gen.config.upstream}: {exc.reason} ({detail})"
        request.respond(
            exc.status, headers, json.dumps(body) + "\n", content_type="application/json"
        )


def _cors_word(decision: ActualDecision, origin: str | None) -> CorsWord:
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
