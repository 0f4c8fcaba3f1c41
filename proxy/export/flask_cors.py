"""``cors-proxy export --to flask-cors``: a module defining ``init_cors(app)`` (pure).

flask-cors picks one resource per request by path (its own order: literal paths first,
then by specificity), matches origins with ``re.match`` and case-insensitively, and
leaves ``Vary`` and preflights to the app. So the module passes compiled patterns (case
kept, ``\\Z`` anchored), makes each resource's path pattern exclude the earlier rules'
(so its order does not matter), and adds three small hooks: preflights on the rules'
paths are answered with 204 before any view or login check runs (the proxy never
forwards them), the app's own Access-Control-* fields are dropped before flask-cors adds
its own (``upstream_cors: override``), and ``Vary: Origin`` is added on the rules' paths.
"""

from __future__ import annotations

from proxy.config.model import Config
from proxy.export.model import (
    STANDARD_METHODS,
    Deviation,
    Export,
    deviation_comments,
    header_comment,
    library_deviations,
    origins_covered,
    paths_may_overlap,
    rules_of,
    rx_escape,
)

_REGEXISH = frozenset("*\\]?$^[()")  # flask-cors's probably_regex characters


def _rx(body: str, flags: str = "") -> str:
    return f"re.compile({body + chr(92) + 'Z'!r}{flags})"


def _header(name: str) -> str:
    if name == "*":
        return repr(name)  # flask-cors's own wildcard: every requested header
    if any(c in _REGEXISH for c in name):  # flask-cors would take it for a regex
        return _rx(_escape(name), ", re.IGNORECASE")
    return repr(name)


def _escape(text: str) -> str:
    return rx_escape(text)


def render(cfg: Config, source: str) -> Export:
    rules = rules_of(cfg)
    deviations: list[Deviation] = []
    resources: list[str] = []
    covered: list[str] = []
    for r in rules:
        notes: list[str] = []
        for dev in library_deviations(r):
            deviations.append(dev)
            notes.append(f"# {dev.kind}: {dev.instead}")
        # Path-only selection: a later rule applies only to paths no earlier rule covers.
        for e in rules[: r.index]:
            if paths_may_overlap(e.rule, r.rule) and not origins_covered(r, e):
                dev = Deviation(
                    r.label,
                    "selected-by-path",
                    f"for an origin {e.label} does not accept, on a path both rules cover,"
                    f" the proxy applies {r.label}",
                    f"flask-cors picks its resource by path alone: {e.label} applies and"
                    " the origin gets no CORS headers",
                )
                deviations.append(dev)
                notes.append(f"# {dev.kind}: {dev.instead}")
        mine = r.path_rx if r.path_rx is not None else ".*"
        before = [e.path_rx if e.path_rx is not None else ".*" for e in rules[: r.index]]
        path = f"(?!(?:{'|'.join(before)})\\Z)(?:{mine})" if before else f"(?:{mine})"
        covered.append(f"(?:{mine})")
        origins = [_rx(_escape(o)) for o in r.exact] + [_rx(f"(?:{x})") for x in r.origin_rxs]
        methods = list(STANDARD_METHODS) if r.any_method else list(r.methods)
        headers = ["*"] if r.any_header else list(r.headers)
        # without credentials a '*' exposes every header
        expose = ["*"] if r.expose_all and not r.rule.allow_credentials else list(r.expose)
        resources.append(f"    # {r.label}: {', '.join(r.rule.paths) or '(every path)'}")
        resources.extend(f"    {n}" for n in notes)
        resources.append(f"    {_rx(path)}: {{")
        resources.append("        # compiled patterns: compared case-sensitively and anchored,")
        resources.append("        # as the proxy does (plain strings would be matched with")
        resources.append("        # re.match, ignoring case)")
        resources.append("        'origins': [")
        resources.extend(f"            {o}," for o in origins)
        resources.append("        ],")
        resources.append(f"        'methods': {methods!r},")
        resources.append(f"        'allow_headers': [{', '.join(_header(h) for h in headers)}],")
        resources.append(f"        'expose_headers': {expose!r},")
        resources.append(f"        'supports_credentials': {r.rule.allow_credentials!r},")
        resources.append(f"        'max_age': {r.rule.max_age!r},")
        resources.append(f"        'allow_private_network': {r.rule.allow_private_network!r},")
        resources.append("    },")
    covered_rx = f"(?:{'|'.join(covered)})" if covered else "(?!)"
    override = cfg.upstream_cors == "override"
    lines = header_comment(cfg, source, "flask-cors")
    lines += [
        "#",
        "# Use: from cors_export import init_cors; init_cors(app)",
        "# In debug mode (flask --debug) Werkzeug's debugger answers an exception with its own",
        "# 500 page, which no after_request hook sees: it carries no CORS headers and the",
        "# browser reports a CORS error (flask-cors#67). Production (debug off) is unaffected.",
    ]
    lines += deviation_comments(deviations)
    lines += [
        '"""CORS for a Flask app, as cors-proxy does it in development (flask-cors >= 5)."""',
        "",
        "import re",
        "",
        "from flask import Flask, Response, request",
        "from flask_cors import CORS",
        "",
        "# One resource per rule; each path pattern leaves out the earlier rules' paths.",
        "RESOURCES = {",
        *resources,
        "}",
        f"COVERED = re.compile({covered_rx + chr(92) + 'Z'!r})  # the paths some rule covers",
        "_CORS_FIELDS = (",
        "    'access-control-allow-origin', 'access-control-allow-credentials',",
        "    'access-control-allow-methods', 'access-control-allow-headers',",
        "    'access-control-expose-headers', 'access-control-max-age',",
        "    'access-control-allow-private-network',",
        ")",
        "",
        "",
        "def _answer_preflight() -> Response | None:",
        '    """Preflights on the rules\' paths get 204 before any view (or login check)',
        '    runs; flask-cors then adds its headers."""',
        "    if (",
        "        request.method == 'OPTIONS'",
        "        and 'Origin' in request.headers",
        "        and 'Access-Control-Request-Method' in request.headers",
        "        and COVERED.match(request.path)",
        "    ):",
        "        return Response(status=204)",
        "    return None",
        "",
        "",
        "def _drop_app_cors(response: Response) -> Response:",
        '    """upstream_cors: override: the app\'s own Access-Control-* fields go (registered',
        '    after CORS(), so it runs before flask-cors adds its own)."""',
        "    for name in _CORS_FIELDS:",
        "        response.headers.pop(name, None)",
        "    return response",
        "",
        "",
        "def _vary_origin(response: Response) -> Response:",
        '    """Vary: Origin on every response on the rules\' paths (flask-cors adds it only',
        '    when it sends CORS headers), so caches never mix answers for two origins."""',
        "    if COVERED.match(request.path):",
        "        response.vary.add('Origin')",
        "    return response",
        "",
        "",
        "def init_cors(app: Flask) -> None:",
        "    CORS(",
        "        app,",
        "        resources=RESOURCES,",
        "        always_send=False,  # no CORS headers for requests without Origin",
        "        send_wildcard=False,",
        "        vary_header=True,",
        "        intercept_exceptions=True,  # errors keep their CORS headers",
        "    )",
        "    app.before_request(_answer_preflight)",
    ]
    if override:
        lines.append("    app.after_request(_drop_app_cors)")
    else:
        lines.append(
            "    # upstream_cors: preserve: flask-cors leaves a response alone when the view"
        )
        lines.append("    # set Access-Control-Allow-Origin itself.")
    lines.append("    app.after_request(_vary_origin)")
    return Export("flask-cors", "\n".join(lines) + "\n", tuple(deviations))
