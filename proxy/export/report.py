"""Report-only rules (the CSP idea): stricter rules that are not enforced yet; what they
would have blocked is logged, so a team can tighten its rules before exporting them
(pure).

Two ways in: ``report_only: true`` on a rule (the rule is answered loosely, as in
learning mode: any origin, with credentials, any method and header, every header
exposed), or ``--candidate FILE`` (the config's rules decide, the file's are the
candidate). Either way each exchange is also decided by the candidate rules and judged
by the browser oracle: a block, or a response header scripts could no longer read, is
reported on the exchange's log line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from proxy.config.model import Config
from proxy.diagnosis.oracle import Exchange, evaluate, exposed_headers
from proxy.export.learn import NOT_READ_BY_SCRIPTS
from proxy.policy.cors import CorsPolicy, CorsRule, expose_all_value

LOOSE = dict(
    origins=("*",),
    origin_regex=None,
    allow_methods=("*",),
    allow_headers=("*",),
    expose_headers=("*",),
    allow_credentials=True,
    allow_private_network=True,
)


def loosened(rule: CorsRule) -> CorsRule:
    """A report-only rule as it is answered: as loosely as learning mode does."""
    return replace(rule, **LOOSE)  # type: ignore[arg-type]


def enforced_and_candidate(cfg: Config) -> tuple[tuple[CorsRule, ...], tuple[CorsRule, ...] | None]:
    """The rules that decide, and the candidate rules whose refusals are only logged
    (None when there are none)."""
    if cfg.candidate is not None:
        return cfg.rules, cfg.candidate
    if any(r.report_only for r in cfg.rules):
        return tuple(loosened(r) if r.report_only else r for r in cfg.rules), cfg.rules
    return cfg.rules, None


def _who(rule: str | None) -> str:
    return f"report-only: rule {rule!r}" if rule else "report-only: the candidate rules"


def preflight_report(
    candidate: CorsPolicy,
    *,
    url: str,
    path: str,
    origin: str,
    method: str,
    request_headers: str | None,
    private_network: bool,
) -> str:
    """What the candidate rules say about a preflight the enforced ones allowed ("" when
    they allow it too)."""
    d = candidate.preflight(
        path=path,
        origin=origin,
        request_method=method,
        request_headers=request_headers,
        private_network=private_network,
    )
    names = tuple(n.strip().lower() for n in (request_headers or "").split(",") if n.strip())
    v = evaluate(Exchange(url, origin, method, names, False, True), d.status, d.headers)
    if v.allowed:
        return ""
    return f"{_who(d.rule)} would block this preflight: {d.reason or v.cause}"


def actual_report(
    candidate: CorsPolicy,
    *,
    url: str,
    path: str,
    origin: str,
    method: str,
    credentials: bool,
    status: int,
    sent: Sequence[tuple[str, str]],
) -> str:
    """What the candidate rules say about a response the enforced ones allowed: a block,
    or headers scripts read now and could not then ("" when nothing changes)."""
    d = candidate.actual(path=path, origin=origin)
    plain = [(n, v) for n, v in sent if not n.lower().startswith("access-control-")]
    theirs = [*plain, *d.headers]
    if d.allowed and d.expose_all:
        theirs.append(("Access-Control-Expose-Headers", expose_all_value([n for n, _ in plain])))
    v = evaluate(Exchange(url, origin, method, (), credentials, False), status, theirs)
    if not v.allowed:
        return f"{_who(d.rule)} would block it: {d.reason or v.cause}"
    hidden = exposed_headers(sent, credentials) - exposed_headers(theirs, credentials)
    hidden -= NOT_READ_BY_SCRIPTS
    if hidden:
        return f"{_who(d.rule)} would hide {', '.join(sorted(hidden))} from scripts"
    return ""
