"""``cors-proxy export --to nginx``: maps plus one server block, to include in http {}
(pure).

Every decision is a ``map`` on request headers (nginx evaluates them lazily, once per
request); every CORS field is one ``add_header ... always`` at the location level, whose
empty value leaves the field out. Preflights are answered with ``return`` inside ``if``,
the one use of ``if`` in a location that is safe, and the only ``if`` blocks here carry no
``add_header`` of their own, so the location's are inherited (nginx's add_header
inheritance: a level with its own add_header drops every inherited one).
"""

from __future__ import annotations

from proxy.config.model import Config
from proxy.export.model import (
    CORS_RESPONSE_FIELDS,
    PREFLIGHT_VARY,
    Deviation,
    Export,
    deviation_comments,
    expose_all_deviation,
    header_comment,
    preserve_deviation,
    rules_of,
)


def _q(text: str) -> str:
    """A double-quoted nginx string: backslashes and quotes escaped (nginx turns ``\\\\``
    into ``\\``, ``\\"`` into ``"``, and ``\\t``/``\\n``/``\\r`` into control characters)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _anchored(body: str) -> str:
    return _q(f"~^(?:{body})$")


def render(cfg: Config, source: str) -> Export:
    rules = rules_of(cfg)
    deviations: list[Deviation] = []
    maps: list[str] = []
    n = len(rules)

    def map_block(source_var: str, var: str, entries: list[tuple[str, str]], default: str) -> None:
        maps.append(f"map {source_var} ${var} {{")
        maps.append(f"    default {default};")
        maps.extend(f"    {k} {v};" for k, v in entries)
        maps.append("}")

    # Which rules cover the path ($uri: decoded, without the query) and accept the origin.
    for r in rules:
        maps.append(f"# {r.label}")
        if r.path_rx is None:
            map_block("$uri", f"cors_path_{r.index}", [], "1")
        else:
            map_block("$uri", f"cors_path_{r.index}", [(_anchored(r.path_rx), "1")], '""')
        # One case-sensitive regex: nginx compares a map's plain strings ignoring case,
        # and browsers send origins in lower case, so an upper-case one is no browser's.
        entries = [(_anchored(r.origin_rx), "1")] if r.origin_rx else []
        map_block("$http_origin", f"cors_origin_{r.index}", entries, '""')
    # The deciding rule: fields "11" (path and origin) separated by spaces, first one wins.
    key = " ".join(f"$cors_path_{i}$cors_origin_{i}" for i in range(n))
    selection = [(_q(f"~^(?:[^ ]* ){{{i}}}11( |$)"), str(i)) for i in range(n)]
    any_path = " ".join(f"$cors_path_{i}" for i in range(n))
    maps.append("# The first rule whose paths match and whose origins accept the Origin.")
    map_block(_q(key) if n else '""', "cors_rule", selection, '""')
    map_block(_q(any_path) if n else '""', "cors_covered", [(_q("~1"), "1")], '""')
    maps.append("# A preflight: OPTIONS with Origin and Access-Control-Request-Method.")
    map_block("$http_origin", "cors_has_origin", [('""', '""')], "1")
    map_block("$http_access_control_request_method", "cors_has_acrm", [('""', '""')], "1")
    map_block(
        '"$request_method $cors_has_origin$cors_has_acrm"',
        "cors_preflight",
        [('"OPTIONS 11"', "1")],
        '""',
    )
    map_block(
        '"$cors_preflight:$cors_rule"',
        "cors_preflight_answer",
        [('"~^1:$"', "refuse"), ('"~^1:."', "allow")],
        '""',
    )
    # Header values by "preflight:rule" (":0" an ordinary request under rules[0]).
    acao, acac, acam, acah, maxage, aceh, pna = [], [], [], [], [], [], []
    for r in rules:
        i = r.index
        origin_value = '"*"' if r.acao_star else "$http_origin"
        acao.append((_q(f"~:{i}$"), origin_value))
        if r.rule.allow_credentials:
            acac.append((_q(f"~:{i}$"), "true"))
        acam.append(
            (
                _q(f"1:{i}"),
                "$http_access_control_request_method" if r.any_method else _q(", ".join(r.methods)),
            )
        )
        acah.append(
            (
                _q(f"1:{i}"),
                "$http_access_control_request_headers"
                if r.any_header
                else _q(", ".join(r.headers)),
            )
        )
        if r.rule.max_age is not None:
            maxage.append((_q(f"1:{i}"), _q(str(r.rule.max_age))))
        if r.rule.allow_private_network:
            pna.append((_q(f"1:{i}:true"), "true"))
        dev = expose_all_deviation(r)
        if dev is not None:
            deviations.append(dev)
            expose = r.expose
        elif r.expose_all:
            expose = ("*",)  # without credentials "*" means every header to browsers
        else:
            expose = r.expose
        if expose:
            aceh.append((_q(f":{i}"), _q(", ".join(expose))))
    sel = '"$cors_preflight:$cors_rule"'
    for var, entries in (
        ("cors_acao", acao),
        ("cors_acac", acac),
        ("cors_acam", acam),
        ("cors_acah", acah),
        ("cors_max_age", maxage),
        ("cors_aceh", aceh),
    ):
        map_block(sel, var, entries, '""')
    map_block(
        '"$cors_preflight:$cors_rule:$http_access_control_request_private_network"',
        "cors_acapn",
        pna,
        '""',
    )
    map_block(
        '"$cors_preflight:$cors_covered"',
        "cors_vary",
        [(_q("~^1:"), _q(PREFLIGHT_VARY)), ('":1"', "Origin")],
        '""',
    )
    # WebSockets: refused (403) from an origin that is neither the page's own nor
    # accepted by a rule, as the proxy does; same-origin by a back-reference.
    map_block("$http_upgrade", "cors_connection", [('""', '""')], "upgrade")
    map_block(
        '"$http_origin|$scheme://$http_host"', "cors_same_origin", [(_q(r"~^(.*)\|\1$"), "1")], '""'
    )
    map_block(
        '"$cors_connection:$cors_has_origin:$cors_same_origin:$cors_rule"',
        "cors_ws_refuse",
        [(_q("~^upgrade:1::$"), "1")],
        '""',
    )

    up = cfg.target
    prefix = up.prefix
    listen = f"[{cfg.listen_host}]" if ":" in cfg.listen_host else cfg.listen_host
    host = "$http_host" if cfg.host_header == "preserve" else up.authority
    server = [
        "server {",
        f"    listen {listen}:{cfg.listen_port};",
        "",
        "    location / {",
        "        # Preflights never reach the upstream (the proxy answers them itself).",
        '        if ($cors_preflight_answer = "allow") { return 204; }',
        '        if ($cors_preflight_answer = "refuse") {',
        '            return 403 "preflight rejected: no rule allows this origin for this path\\n";',
        "        }",
        '        if ($cors_ws_refuse) { return 403 "WebSocket origin not allowed\\n"; }',
        "",
        f"        proxy_pass {up.scheme}://{up.authority}{prefix + '/' if prefix else ''};",
        "        proxy_http_version 1.1;",
        f"        proxy_set_header Host {host};",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        proxy_set_header X-Forwarded-Proto $scheme;",
        "        proxy_set_header X-Forwarded-Host $http_host;",
        "        proxy_set_header Upgrade $http_upgrade;",
        "        proxy_set_header Connection $cors_connection;",
        "        proxy_buffering off;             # stream (server-sent events) like the proxy",
        "        proxy_request_buffering off;",
        f"        client_max_body_size {cfg.max_body_bytes or 0};",
        f"        proxy_connect_timeout {_seconds(cfg.connect_timeout)};",
    ]
    if cfg.read_timeout is not None:
        server.append(f"        proxy_read_timeout {_seconds(cfg.read_timeout)};")
    if up.scheme == "https":
        server.append("        proxy_ssl_server_name on;")
    server.append("")
    if cfg.upstream_cors == "override":
        server.append(
            "        # upstream_cors: override: the upstream's own CORS fields are dropped."
        )
        server.extend(f"        proxy_hide_header {name};" for name in CORS_RESPONSE_FIELDS)
    else:
        server.append(
            "        # upstream_cors: preserve: the fields below are added besides the"
            " upstream's own (nginx cannot add them only when the upstream sent none)."
        )
        deviations.append(preserve_deviation("nginx"))
    server.append("        # always: on every status, upstream errors and nginx's own 502/504 too.")
    for name, var in (
        ("Access-Control-Allow-Origin", "cors_acao"),
        ("Access-Control-Allow-Credentials", "cors_acac"),
        ("Access-Control-Allow-Methods", "cors_acam"),
        ("Access-Control-Allow-Headers", "cors_acah"),
        ("Access-Control-Max-Age", "cors_max_age"),
        ("Access-Control-Allow-Private-Network", "cors_acapn"),
        ("Access-Control-Expose-Headers", "cors_aceh"),
        ("Vary", "cors_vary"),
    ):
        server.append(f"        add_header {name} ${var} always;")
    for d in deviations:
        if d.kind == "expose-all-with-credentials":
            server.append(f"        # {d.kind} ({d.rule}): {d.instead}")
    server += ["    }", "}"]

    lines = header_comment(cfg, source, "nginx")
    lines += [
        "#",
        "# Include this file inside http { }: the maps belong there, next to the one server block.",
    ]
    lines += deviation_comments(deviations)
    lines += ["", *maps, "", *server]
    return Export("nginx", "\n".join(lines) + "\n", tuple(deviations))


def _seconds(value: float) -> str:
    return f"{int(value * 1000)}ms" if value != int(value) else f"{int(value)}s"
