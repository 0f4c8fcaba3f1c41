"""What a run reports: medians per contender and scenario, ratios to the baselines taken
inside each round first, and the markdown tables (bench/RESULTS.md quotes them)."""

from __future__ import annotations

import json
import statistics
from typing import Any

from . import compare
from .contenders import Contender
from .measure import Run
from .options import Options
from .workload import BASELINES, SCENARIO_TITLES

Summary = dict[str, Any]  # scenario -> {"ratio_metric": ..., "contenders": {name: stats}}


def summarize(runs: list[Run], contenders: list[Contender], scenarios: list[str]) -> Summary:
    by: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        by.setdefault((r["contender"], r["scenario"]), []).append(r)

    def same_round(base: str, sc: str, r: Run) -> Run | None:
        return next((x for x in by.get((base, sc), []) if x["round"] == r["round"]), None)

    summary: Summary = {}
    for sc in scenarios:
        metric = "mbps" if sc == "big" else "rps"
        cost = "cpu_s_per_gb" if sc == "big" else "cpu_us_per_req"
        summary[sc] = {"ratio_metric": metric, "contenders": {}}
        for c in contenders:
            rs = by.get((c.name, sc), [])
            if not rs:
                continue
            vals = [r[metric] for r in rs]
            med = statistics.median(vals)
            s: dict[str, Any] = {
                "rounds": len(rs),
                "rps": statistics.median(r["rps"] for r in rs),
                "mbps": statistics.median(r["mbps"] for r in rs),
                "p50_ms": statistics.median(r["p50_ms"] for r in rs),
                "p99_ms": statistics.median(r["p99_ms"] for r in rs),
                "peak_rss_mib": max(r["peak_rss_kib"] for r in rs) / 1024,
                "cpu_pct": statistics.median(r["cpu_pct"] for r in rs),
                "cpu_us_per_req": statistics.median(r["cpu_us_per_req"] or 0 for r in rs),
                "cpu_s_per_gb": statistics.median(r["cpu_s_per_gb"] or 0 for r in rs),
                "spread_pct": 100 * (max(vals) - min(vals)) / 2 / med if med else None,
                "wrk_cpu_pct": statistics.median(r["wrk_cpu_pct"] for r in rs),
                "other_pct": statistics.median(r["other_pct"] for r in rs),
                "other_pct_max": max(r["other_pct"] for r in rs),
                "steal_pct": statistics.median(r["steal_pct"] for r in rs),
                "attempts": sum(r.get("attempts", 1) for r in rs),
                "errors": sum(r["errors"] for r in rs),
                "non_2xx_3xx": sum(r["non_2xx_3xx"] for r in rs),
                metric + "_per_round": vals,
            }
            for base in BASELINES:
                ratios, cratios = [], []
                for r in rs:
                    b = same_round(base, sc, r)
                    if b and b[metric]:
                        ratios.append(r[metric] / b[metric])
                    if b and b[cost] and r[cost]:
                        cratios.append(r[cost] / b[cost])
                s[f"ratio_{base}"] = statistics.median(ratios) if ratios else None
                s[f"ratio_{base}_per_round"] = ratios
                s[f"cpu_cost_ratio_{base}"] = statistics.median(cratios) if cratios else None
            summary[sc]["contenders"][c.name] = s
    return summary


def fmt(v: float | None, spec: str, dash: str = "–") -> str:
    return dash if v is None else format(v, spec)


def tables(summary: Summary, opts: Options, contenders: list[Contender]) -> str:
    out = []
    for sc, data in summary.items():
        conns = opts.big_connections if sc == "big" else opts.connections
        metric = data["ratio_metric"]
        out.append(f"### {sc}: {SCENARIO_TITLES[sc]}\n")
        out.append(
            f"wrk -t{opts.threads} -c{conns}, {opts.duration:g} s x {opts.rounds} rounds, "
            "medians; ratios = median of per-round ratios of "
            f"**{'MB/s' if metric == 'mbps' else 'req/s'}**\n"
        )
        cost = "CPU s/GB" if sc == "big" else "CPU µs/req"
        out.append(
            "| contender | req/s | MB/s | ±spread | p50 ms | p99 ms | peak RSS MiB | CPU % | "
            f"{cost} | wrk CPU % | other % | × direct | × nginx-cors | errors |"
        )
        out.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for c in contenders:
            s = data["contenders"].get(c.name)
            if not s:
                continue
            err = s["errors"] + s["non_2xx_3xx"]
            bound = " †" if s["wrk_cpu_pct"] >= 90 else ""
            out.append(
                f"| {c.name} | {s['rps']:,.0f}{bound if metric == 'rps' else ''} "
                f"| {s['mbps']:,.1f}{bound if metric == 'mbps' else ''} | "
                f"{fmt(s['spread_pct'], '.1f')}% "
                f"| {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['peak_rss_mib']:.1f} | "
                f"{s['cpu_pct']:.0f} "
                f"| {s['cpu_s_per_gb'] if sc == 'big' else s['cpu_us_per_req']:.1f} "
                f"| {s['wrk_cpu_pct']:.0f} | {s['other_pct']:.0f} (max {s['other_pct_max']:.0f}) "
                f"| {fmt(s['ratio_direct'], '.2f')} | {fmt(s['ratio_nginx-cors'], '.2f')} | {err} |"
            )
        out.append("")
        out.append(
            "†: wrk itself used >= 90% of its core, so this is a lower bound for the contender. "
            "other %: CPU used by processes outside the benchmark during the window (median, max), "
            "in % of one core. ±spread: half the min–max range of the ratio metric over rounds.\n"
        )
    out.append("### ratios at a glance (median of per-round ratios)\n")
    out.append(
        "Throughput: req/s (small, preflight) or MB/s (big), contender / baseline, higher is "
        "better. CPU cost: the contender's CPU per request (per GB for big) / nginx-cors's, "
        "lower is better; it is the number least moved by background load.\n"
    )
    out.append(
        "| contender |"
        + "".join(
            f" {sc} × direct | {sc} × nginx-cors | {sc} CPU cost × nginx-cors |" for sc in summary
        )
    )
    out.append("|---|" + "--:|" * (3 * len(summary)))
    for c in contenders:
        row = f"| {c.name} |"
        for data in summary.values():
            s = data["contenders"].get(c.name, {})
            row += (
                f" {fmt(s.get('ratio_direct'), '.2f')} | {fmt(s.get('ratio_nginx-cors'), '.2f')} "
                f"| {fmt(s.get('cpu_cost_ratio_nginx-cors'), '.2f')} |"
            )
        out.append(row)
    out.append("")
    return "\n".join(out)


def _pairs(runs: list[Run], sc: str, base: str, other: str) -> list[tuple[Run, Run]]:
    """(other's run, base's run) of each round in which both were measured in ``sc``."""
    by_round: dict[int, dict[str, Run]] = {}
    for r in runs:
        if r["scenario"] == sc and r["contender"] in (base, other):
            by_round.setdefault(r["round"], {})[r["contender"]] = r
    return [(d[other], d[base]) for d in by_round.values() if base in d and other in d]


def _ratios(pairs: list[tuple[Run, Run]], metric: str) -> list[float]:
    return [m[metric] / b[metric] for m, b in pairs if m[metric] and b[metric]]


def rules_table(runs: list[Run], base: str = "cors-proxy", many: str = "cors-proxy-1k") -> str:
    """1 vs N configured rules: per-round ratios of the same proxy with the two configs."""
    rows = []
    for sc in ("small", "preflight"):
        pairs = _pairs(runs, sc, base, many)
        if not pairs:
            continue
        rps = statistics.median(_ratios(pairs, "rps"))
        cpu = statistics.median(_ratios(pairs, "cpu_us_per_req"))
        rss = (
            max(m["peak_rss_kib"] for m, _ in pairs) / 1024,
            max(b["peak_rss_kib"] for _, b in pairs) / 1024,
        )
        rows.append(
            f"| {sc} | {rps:.2f} | {100 * (rps - 1):+.1f}% | {cpu:.2f} | {rss[1]:.1f} / "
            f"{rss[0]:.1f} |"
        )
    if not rows:
        return ""
    return "\n".join(
        [
            f"### rules: {many} ({base} with 1,000 configured rules) vs {base} (one rule)\n",
            "Median of per-round ratios; the target is < 10% difference.\n",
            "| scenario | req/s × one rule | difference | CPU µs/req × one rule | peak RSS MiB "
            "(1 / 1k) |",
            "|---|--:|--:|--:|--:|",
            *rows,
            "",
        ]
    )


def against_table(runs: list[Run], other: str, scenarios: list[str]) -> str:
    """This checkout's cors-proxy against another checkout's (--against), round by round.

    Beyond noise (from 3 rounds on): every round's ratio on the same side of 1, and the
    median ratio further from 1 than the larger relative spread of the two contenders'
    own numbers over the rounds (the rule of ``bench/micro.py --against``)."""
    base = "cors-proxy"
    rows = []
    for sc in scenarios:
        pairs = _pairs(runs, sc, base, other)
        metric = "mbps" if sc == "big" else "rps"
        cost = "cpu_s_per_gb" if sc == "big" else "cpu_us_per_req"
        if not pairs or not all(m[x] and b[x] for m, b in pairs for x in (metric, cost)):
            continue
        cells = []
        for key in (metric, cost):
            ours, theirs = [b[key] for _, b in pairs], [m[key] for m, _ in pairs]
            cells.append((ours, theirs, [x / y for x, y in zip(ours, theirs, strict=True)]))
        (ours, theirs, speed), (_, _, cpu) = cells
        verdict = compare.verdict(ours, theirs, "faster", "slower")  # more req/s: faster
        rows.append(
            f"| {sc} | {statistics.median(speed):.3f} ({min(speed):.2f}–{max(speed):.2f}) "
            f"| {statistics.median(cpu):.3f} ({min(cpu):.2f}–{max(cpu):.2f}) | {verdict} |"
        )
    if not rows:
        return ""
    unit = "req/s (MB/s for big)"
    return "\n".join(
        [
            f"### against: {base} (this checkout) vs {other}\n",
            "Median of per-round ratios this / other, with their range over the rounds. The "
            "verdict is on throughput: beyond noise only when every round agrees and the "
            "difference exceeds the round-to-round spread of either contender.\n",
            f"| scenario | {unit} × other | CPU per request (per GB) × other | verdict |",
            "|---|--:|--:|---|",
            *rows,
            "",
        ]
    )


def slow_table(slow: list[dict[str, Any]], opts: Options) -> str:
    out = [
        f"### slow: GET /huge ({opts.slow_mib:,} MiB) read by one client at "
        f"~{opts.slow_mbps:g} MB/s\n",
        "Peak RSS of the proxy's process tree while the client reads; the target for "
        f"cors-proxy is < {opts.slow_limit_mib:g} MiB (back-pressure in bytes, not a buffered "
        "body).\n",
        "| contender | status | bytes complete | MB/s | RSS before MiB | peak RSS MiB | CPU s | "
        "under limit |",
        "|---|--:|---|--:|--:|--:|--:|---|",
    ]
    for r in slow:
        out.append(
            f"| {r['contender']} | {r['status']} | "
            f"{'yes' if r['bytes_ok'] else 'NO ' + r['error']} "
            f"| {r['mbps']:.0f} | {r['rss_before_mib']:.1f} | {r['peak_rss_mib']:.1f} | "
            f"{r['cpu_s']:.1f} "
            f"| {'yes' if r['peak_rss_mib'] < opts.slow_limit_mib else 'no'} |"
        )
    out.append("")
    return "\n".join(out)


def contenders_table(contenders: list[Contender]) -> list[str]:
    lines = ["| contender | port/prefix | idle RSS MiB | valid | note |", "|---|---|--:|---|---|"]
    for c in contenders:
        v = c.validation
        valid = c.dead or ("ok" if v.get("ok") else f"FAIL {json.dumps(v)}")
        lines.append(
            f"| {c.name} | :{c.port}{c.prefix} | {c.idle_rss_kib / 1024:.1f} | {valid} | {c.note} |"
        )
    return lines
