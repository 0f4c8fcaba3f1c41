"""``cors-proxy export --to caddy``: one Caddyfile site block (pure).

Caddy 2 has no CORS directive: the block is named matchers (``path_regexp`` and
``header_regexp``, RE2 patterns anchored with ``^...$``) and ``header``/``respond``
inside one ``route``, which keeps the written order. Rule k's matcher also says "not
rule 0..k-1", so the first rule whose paths match and whose origins accept the Origin
decides. Response fields are set before ``reverse_proxy`` runs, so they reach every
status the upstream answers; the upstream's own Access-Control-* fields are removed
with ``header_down`` (``upstream_cors: override``).
"""

from __future__ import annotations

import re

from proxy.config.model import Config
from proxy.export.model import (
    CORS_RESPONSE_FIELDS,
    PREFLIGHT_VARY,
    Deviation,
    Export,
    Rule,
    deviation_comments,
    expose_all_deviation,
    header_comment,
    preserve_deviation,
    rules_of,
)

# RE2 has no look-around and no back-references.
_NOT_RE2 = re.compile(r"\(\?[=!<]|\\[1-9]|\(\?P=")


def _q(text: str) -> str:
    """A Caddyfile token in double quotes (only ``"`` needs escaping there)."""
    return '"' + text.replace('"', '\\"') + '"'


def _conditions(r: Rule, origin_rx: str | None) -> list[str]:
    out = []
    if r.path_rx is not None:
        out.append(f"path_regexp {_q(f'^(?:{r.path_rx})$')}")
    out.append(f"header_regexp Origin {_q(f'^(?:{origin_rx})$') if origin_rx else _q('^$.')}")
    return out


def render(cfg: Config, source: str) -> Export:
    rules = rules_of(cfg)
    deviations: list[Deviation] = []
    matchers: list[str] = []
    route: list[str] = []
    origin_rxs: dict[int, str | None] = {}
    for r in rules:
        rx = r.origin_rx
        if r.rule.origin_regex and _NOT_RE2.search(r.rule.origin_regex):
            dev = Deviation(
                r.label,
                "regex-not-re2",
                f"origin_regex {r.rule.origin_regex!r} uses look-around or back-references",
                "Caddy's RE2 cannot run it: the regex is left out (its origins are refused)",
            )
            deviations.append(dev)
            matchers.append(f"# {r.label}: {dev.kind}: {dev.instead}")
            parts = [x for x in r.origin_rxs if x != r.rule.origin_regex]
            exact = [re.escape(o) for o in r.exact]
            rx = "|".join([*exact, *(f"(?:{x})" for x in parts)]) or None
        origin_rxs[r.index] = rx
    preflight = [
        "method OPTIONS",
        "header Origin *",
        "header Access-Control-Request-Method *",
    ]
    for r in rules:
        own = _conditions(r, origin_rxs[r.index])
        nots = []
        for e in rules[: r.index]:
            nots += ["not {", *(f"\t{c}" for c in _conditions(e, origin_rxs[e.index])), "}"]
        matchers.append(f"# {r.label}")
        matchers += [f"@cors{r.index} {{", *(f"\t{c}" for c in own + nots), "}"]
        matchers += [
            f"@preflight{r.index} {{",
            *(f"\t{c}" for c in own + nots + preflight),
            "}",
        ]
    covered = [r.path_rx for r in rules]
    if None in covered:
        matchers.append("@covered path *")
    elif covered:
        body = "|".join(f"(?:{p})" for p in covered if p is not None)
        matchers.append(f"@covered path_regexp {_q(f'^(?:{body})$')}")
    else:
        matchers.append("@covered path_regexp ^$.")
    matchers += ["@preflight {", *(f"\t{c}" for c in preflight), "}"]
    # WebSockets: refused from an origin that is neither the page's own nor accepted.
    ws = [
        "header_regexp Upgrade (?i)^websocket$",
        "header Origin *",
        "not expression {http.request.header.Origin} == 'http://' + {http.request.hostport}",
    ]
    for r in rules:
        ws += ["not {", *(f"\t{c}" for c in _conditions(r, origin_rxs[r.index])), "}"]
    matchers += ["@websocket_refused {", *(f"\t{c}" for c in ws), "}"]
    for r in rules:
        i = r.index
        acao = "*" if r.acao_star else "{http.request.header.Origin}"
        fields = [f"Access-Control-Allow-Origin {_q(acao)}"]
        if r.rule.allow_credentials:
            fields.append("Access-Control-Allow-Credentials true")
        expose_dev = expose_all_deviation(r)
        if expose_dev is not None:
            deviations.append(expose_dev)
        expose = ("*",) if r.expose_all and expose_dev is None else r.expose
        note = f"; {expose_dev.kind}: {expose_dev.instead}" if expose_dev else ""
        route.append(f"# {r.label}{note}")
        route += [f"header @cors{i} {{", *(f"\t{f}" for f in fields), "}"]
        if expose:
            route.append(f"header @cors{i} Access-Control-Expose-Headers {_q(', '.join(expose))}")
        methods = (
            "{http.request.header.Access-Control-Request-Method}"
            if r.any_method
            else ", ".join(r.methods)
        )
        headers = (
            "{http.request.header.Access-Control-Request-Headers}"
            if r.any_header
            else ", ".join(r.headers)
        )
        pf = [f"Access-Control-Allow-Methods {_q(methods)}"]
        pf.append(f"Access-Control-Allow-Headers {_q(headers)}")
        if r.rule.max_age is not None:
            pf.append(f"Access-Control-Max-Age {r.rule.max_age}")
        route += [f"header @preflight{i} {{", *(f"\t{f}" for f in pf), "}"]
        if r.rule.allow_private_network:
            route.append(
                f"# {r.label}: allow_private_network: answered for every preflight of this rule"
            )
            route.append(f"header @preflight{i} Access-Control-Allow-Private-Network true")
    route += [
        f"header @preflight Vary {_q(PREFLIGHT_VARY)}",
        "header @covered +Vary Origin",
        "# Preflights never reach the upstream (the proxy answers them itself).",
    ]
    route += [f"respond @preflight{r.index} 204" for r in rules]
    route.append('respond @preflight "preflight rejected: no rule allows this origin" 403')
    route.append('respond @websocket_refused "WebSocket origin not allowed" 403')
    up = cfg.target
    proxy_block = [f"reverse_proxy {up.scheme}://{up.authority} {{"]
    if up.prefix:
        route.insert(0, f"rewrite * {up.prefix}{{uri}}")
    if cfg.host_header == "upstream":
        proxy_block.append("\theader_up Host {upstream_hostport}")
    if cfg.upstream_cors == "override":
        proxy_block.append("\t# upstream_cors: override: the upstream's own CORS fields go")
        proxy_block += [f"\theader_down -{name}" for name in CORS_RESPONSE_FIELDS]
    else:
        proxy_block.append(
            "\t# preserve-adds: the rule's fields are added beside the upstream's own"
        )
        deviations.append(preserve_deviation("Caddy"))
    proxy_block.append("\tflush_interval -1  # stream (server-sent events) like the proxy")
    proxy_block += ["\ttransport http {", f"\t\tdial_timeout {_seconds(cfg.connect_timeout)}"]
    if cfg.read_timeout is not None:
        proxy_block.append(f"\t\tresponse_header_timeout {_seconds(cfg.read_timeout)}")
    proxy_block += ["\t}", "}"]
    route += proxy_block

    listen = f"[{cfg.listen_host}]" if ":" in cfg.listen_host else cfg.listen_host
    lines = header_comment(cfg, source, "caddy")
    lines += [
        "#",
        "# A Caddyfile site block; run alone with a global block such as { auto_https off }.",
    ]
    lines += deviation_comments(deviations)
    lines += [f"http://:{cfg.listen_port} {{", f"\tbind {listen}", ""]
    lines += [f"\t{m}" for m in matchers]
    lines += ["", "\troute {"]
    lines += [f"\t\t{line}" for line in route]
    lines += ["\t}", "}"]
    return Export("caddy", "\n".join(lines) + "\n", tuple(deviations))


def _seconds(value: float) -> str:
    return f"{int(value * 1000)}ms" if value != int(value) else f"{int(value)}s"
