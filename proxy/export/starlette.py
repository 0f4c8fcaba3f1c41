"""``cors-proxy export --to starlette``: a module defining ``add_cors(app)`` (pure).

One ``CORSMiddleware`` per rule, and a small dispatcher in front of them that picks the
rule as the proxy does (the first whose paths match and whose origins accept the
Origin; when none accepts, the first whose paths match, which then adds nothing). Each
middleware wraps the app with a filter that drops the app's own Access-Control-* fields
(``upstream_cors: override``). Starlette's own semantics kept as they are: it answers a
refused preflight with 400 instead of 204 (the browser blocks either way), sends
``Max-Age`` always, and ``Vary: Origin`` on every response it handles.
"""

from __future__ import annotations

from proxy.config.model import Config
from proxy.export.model import (
    Deviation,
    Export,
    deviation_comments,
    header_comment,
    library_deviations,
    rules_of,
)


def render(cfg: Config, source: str) -> Export:
    rules = rules_of(cfg)
    deviations: list[Deviation] = []
    entries: list[str] = []
    for r in rules:
        notes: list[str] = []
        for dev in library_deviations(r):
            deviations.append(dev)
            notes.append(f"# {dev.kind}: {dev.instead}")
        if r.rule.max_age is None:
            dev = Deviation(
                r.label,
                "max-age-always",
                "max_age: null sends no Access-Control-Max-Age (browsers cache 5 s)",
                "Starlette always sends one: 5",
            )
            deviations.append(dev)
            notes.append(f"# {dev.kind}: {dev.instead}")
        expose = ["*"] if r.expose_all and not r.rule.allow_credentials else list(r.expose)
        regex = "|".join(f"(?:{x})" for x in r.origin_rxs) or None
        entries.append(f"    # {r.label}: {', '.join(r.rule.paths) or '(every path)'}")
        entries.extend(f"    {n}" for n in notes)
        entries.append("    (")
        entries.append(f"        {r.path_rx!r},  # paths (full match on the decoded path)")
        entries.append("        dict(")
        entries.append(f"            allow_origins={list(r.exact)!r},")
        entries.append(f"            allow_origin_regex={regex!r},  # full match")
        entries.append(f"            allow_methods={['*'] if r.any_method else list(r.methods)!r},")
        entries.append(
            f"            allow_headers={['*'] if r.any_header else list(r.rule.allow_headers)!r},"
        )
        entries.append(f"            expose_headers={expose!r},")
        entries.append(f"            allow_credentials={r.rule.allow_credentials!r},")
        entries.append(
            f"            max_age={r.rule.max_age if r.rule.max_age is not None else 5!r},"
        )
        entries.append(f"            allow_private_network={r.rule.allow_private_network!r},")
        entries.append("        ),")
        entries.append("    ),")
    if rules:
        deviations.append(
            Deviation(
                "all rules",
                "refused-preflight-400",
                "a preflight from an accepted origin whose method or headers the rule"
                " refuses gets 204 with the rule's own lists: the browser names the method"
                " or header it refused",
                "CORSMiddleware answers it with 400 'Disallowed CORS method' (or headers):"
                " the browser blocks it too, reporting the status instead",
            )
        )
    override = cfg.upstream_cors == "override"
    lines = header_comment(cfg, source, "starlette")
    lines += [
        "#",
        "# Use: from cors_export import add_cors; add_cors(app)  (Starlette or FastAPI)",
        "# An exception that escapes your app is answered by Starlette's ServerErrorMiddleware,",
        "# which sits outside every user middleware: that 500 carries no CORS headers and the",
        "# browser reports a CORS error (Kludex/starlette#1116). Return an error response",
        "# from your handlers, or serve CORSByRule(app) as the outermost ASGI app instead.",
    ]
    lines += deviation_comments(deviations)
    lines += [
        '"""CORS for a Starlette or FastAPI app, as cors-proxy does it in development."""',
        "",
        "import re",
        "from typing import Any",
        "",
        "from starlette.datastructures import Headers",
        "from starlette.middleware.cors import CORSMiddleware",
        "from starlette.types import ASGIApp, Message, Receive, Scope, Send",
        "",
        "RULES: list[tuple[str | None, dict[str, Any]]] = [",
        *entries,
        "]",
        f"OVERRIDE = {override!r}  # upstream_cors: drop the app's own Access-Control-* fields",
        "",
        "",
        "class DropAppCors:",
        '    """The app\'s own Access-Control-* response fields are dropped."""',
        "",
        "    def __init__(self, app: ASGIApp) -> None:",
        "        self.app = app",
        "",
        "    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:",
        "        async def strip(message: Message) -> None:",
        "            if message['type'] == 'http.response.start':",
        "                message['headers'] = [",
        "                    (k, v)",
        "                    for k, v in message.get('headers', [])",
        "                    if not k.lower().startswith(b'access-control-')",
        "                ]",
        "            await send(message)",
        "",
        "        await self.app(scope, receive, strip)",
        "",
        "",
        "# refused-preflight-400: a preflight refused for its method or headers gets 400",
        "# from CORSMiddleware (the browser blocks it either way).",
        "",
        "",
        "class KeepAppCors:",
        '    """upstream_cors: preserve: remembers the app\'s own Access-Control-* fields, so',
        "    that CORSByRule puts them back instead of the middleware's (the proxy adds its",
        '    own only to responses without any)."""',
        "",
        "    def __init__(self, app: ASGIApp) -> None:",
        "        self.app = app",
        "",
        "    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:",
        "        async def mark(message: Message) -> None:",
        "            if message['type'] == 'http.response.start':",
        "                own = [",
        "                    (k, v)",
        "                    for k, v in message.get('headers', [])",
        "                    if k.lower().startswith(b'access-control-')",
        "                ]",
        "                if own:",
        "                    scope['cors_export.app_cors'] = own",
        "            await send(message)",
        "",
        "        await self.app(scope, receive, mark)",
        "",
        "",
        "class CORSByRule:",
        '    """One CORSMiddleware per rule; the first rule whose paths match and whose',
        "    origins accept the Origin answers (or, when none accepts, the first whose",
        '    paths match: it adds no CORS headers then)."""',
        "",
        "    def __init__(self, app: ASGIApp) -> None:",
        "        self.app = app",
        "        inner = DropAppCors(app) if OVERRIDE else KeepAppCors(app)",
        "        self.rules = [",
        "            (re.compile(path) if path else None, CORSMiddleware(inner, **options))",
        "            for path, options in RULES",
        "        ]",
        "",
        "    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:",
        "        if scope['type'] != 'http':",
        "            await self.app(scope, receive, send)",
        "            return",
        "        origin = Headers(scope=scope).get('origin')",
        "        first = None",
        "        for path, middleware in self.rules:",
        "            if path is not None and not path.fullmatch(scope['path']):",
        "                continue",
        "            if origin is not None and middleware.is_allowed_origin(origin):",
        "                await middleware(scope, receive, self._restore(scope, send))",
        "                return",
        "            first = first or middleware",
        "        await (first or self.app)(scope, receive, self._restore(scope, send))",
        "",
        "    @staticmethod",
        "    def _restore(scope: Scope, send: Send) -> Send:",
        "        if OVERRIDE:",
        "            return send",
        "",
        "        async def restore(message: Message) -> None:",
        "            own = scope.get('cors_export.app_cors')",
        "            if message['type'] == 'http.response.start' and own:",
        "                message['headers'] = [",
        "                    (k, v)",
        "                    for k, v in message.get('headers', [])",
        "                    if not k.lower().startswith(b'access-control-')",
        "                ] + own",
        "            await send(message)",
        "",
        "        return restore",
        "",
        "",
        "def add_cors(app: Any) -> None:",
        '    """Add the rules to a Starlette or FastAPI app (before it starts)."""',
        "    app.add_middleware(CORSByRule)",
    ]
    return Export("starlette", "\n".join(lines) + "\n", tuple(deviations))
