#!/usr/bin/env python3
"""Side-by-side benchmark of CORS reverse proxies, in one run, reported as ratios.

`python bench/run.py` installs or finds its contenders, starts an upstream and every
contender in front of it, checks that each one answers correctly, then runs wrk against
all of them in interleaved rounds (order rotated each round):

  small      GET  /api/hello with Origin and a Cookie                   (requests/s)
  preflight  OPTIONS /api/hello with Origin + ACRM + ACRH               (requests/s)
  big        GET  /big (64 MiB) with Origin                             (MB/s)
  rules      cors-proxy with a generated config of 1,000 rules (3,000 origins) against
             cors-proxy with one rule, on small and preflight           (ratio)
  slow       GET  /huge (1 GiB) read by one slow client; peak RSS of the proxy (MiB)

Per contender it records requests/s, MB/s, p50/p99 latency (wrk's histogram), the peak
RSS of the contender's process tree during the measured window (VmHWM after a reset via
/proc/PID/clear_refs, else sampled VmRSS) and the CPU the contender used (µs per request,
s per GB). Ratios to "direct" and "nginx-cors" are taken inside each round first and the
median of those per-round ratios is reported.

Contenders:
  direct       a second instance of the upstream itself (no proxy), on the contender CPU
  nginx-cors   nginx reverse proxy adding CORS headers, answering preflights with 204
  lcp          local-cors-proxy (node/express), `npm ci` in bench/
  cors-proxy   this checkout: python -m proxy --listen ... --upstream ... --origin ...
  cors-proxy-1k  the same with --config of 1,000 rules (measured in small, preflight)
  cors-proxy@REV  with --against REV: cors-proxy from another checkout (a directory or a
                 git revision), one rule, every scenario; compared round by round
  aiohttp-floor  yardstick: bare aiohttp web.Server + cors-proxy's upstream client, fixed
                 CORS headers, no policy or log (small, preflight): aiohttp's floor
  httptools-floor  yardstick: the fast lane's shape (own httptools protocol) + the same
                 client, fixed CORS headers, no policy or log: the fast lane's floor
Extra contenders: --contender 'NAME=CMD' with placeholders {port} {upstream}
{upstream_host} {upstream_port} {python} {node} {bench_dir} {repo} {workdir} {origin}.

Missing tools are installed when possible (nginx and wrk with apt-get as root, local-cors-
proxy with `npm ci`); --no-install turns that off. --smoke is the CI mode: every check,
a tiny timing (1 round, 1 s), exit 1 if any contender is missing or fails its check.
Timings never fail a run.

CPU layout on a 2-core machine (default; --no-pin disables it): wrk and the upstream
share CPU 1, the contender under test has CPU 0 to itself ("direct" too).

Only 127.0.0.1 is contacted. Every process the harness starts runs in its own session
and is stopped (SIGTERM, then SIGKILL, by process-group id) on exit, error and signals.
Stdlib only (the chart needs matplotlib: bench/chart.py). This file is the command line;
the harness is the typed package bench/harness/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.options import Options
from harness.probe import pick_base_port
from harness.runner import run
from harness.workload import SCENARIOS


def parse_args(argv: list[str]) -> Options:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--upstream",
        choices=("nginx", "flask"),
        default="nginx",
        help="upstream server behind every proxy (default nginx: fast; flask: realistic)",
    )
    ap.add_argument(
        "--duration", type=float, default=10, help="measured seconds per run (default 10)"
    )
    ap.add_argument(
        "--warmup", type=float, default=2, help="unrecorded wrk seconds before each run (default 2)"
    )
    ap.add_argument(
        "--settle", type=float, default=1.0, help="pause after each run, seconds (default 1)"
    )
    ap.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; medians are reported (default 3)"
    )
    ap.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="subset of small,preflight,big"
    )
    ap.add_argument(
        "--connections", type=int, default=50, help="wrk connections for small/preflight (50)"
    )
    ap.add_argument("--big-connections", type=int, default=8, help="wrk connections for big (8)")
    ap.add_argument(
        "--threads", type=int, default=1, help="wrk threads (default 1: wrk gets one pinned core)"
    )
    ap.add_argument("--big-mib", type=int, default=64, help="size of /big in MiB (default 64)")
    ap.add_argument(
        "--origin", default="http://localhost:3000", help="Origin header sent (must be allowed)"
    )
    ap.add_argument(
        "--contender",
        action="append",
        default=[],
        metavar="NAME=CMD",
        help="extra contender; CMD is a template with {port} {upstream} ...; repeatable",
    )
    ap.add_argument(
        "--prefix",
        action="append",
        default=[],
        metavar="NAME=/PATH",
        help="path prefix a contender needs in front of /api/hello (lcp uses /proxy)",
    )
    ap.add_argument("--only", default="", help="comma list of contenders to run (default: all)")
    ap.add_argument(
        "--contender-scenarios",
        action="append",
        default=[],
        metavar="NAME=SC[,SC]",
        help="measure contender NAME only in these scenarios (e.g. lcp=small); repeatable",
    )
    ap.add_argument("--skip", default="", help="comma list of contenders to leave out")
    ap.add_argument(
        "--base-port",
        default="18080",
        help="upstream port; others follow (default 18080; 'auto': a free range)",
    )
    ap.add_argument(
        "--nginx-workers", type=int, default=1, help="worker_processes for every nginx (default 1)"
    )
    ap.add_argument(
        "--nginx-proxy-buffering",
        choices=("on", "off"),
        default="on",
        help="proxy_buffering of nginx-cors (default on, with proxy_max_temp_file_size 0)",
    )
    ap.add_argument("--cpu-wrk", type=int, default=1, help="CPU for wrk (default 1)")
    ap.add_argument(
        "--cpu-upstream", type=int, default=1, help="CPU for the shared upstream (default 1)"
    )
    ap.add_argument(
        "--cpu-contender", type=int, default=0, help="CPU for the contender under test (default 0)"
    )
    ap.add_argument("--no-pin", action="store_true", help="do not pin anything to CPUs")
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run wrk, upstream and contenders under `nice -n N` (negative needs root); "
        "e.g. -10 to out-weigh ordinary background load (default 0: leave others alone)",
    )
    ap.add_argument(
        "--max-other",
        type=float,
        default=15,
        help="re-run a measurement when processes outside the benchmark used more than this "
        "%% of one core during it (default 15)",
    )
    ap.add_argument(
        "--retries",
        type=int,
        default=2,
        help="re-runs allowed per measurement for --max-other; the quietest is kept (default 2)",
    )
    ap.add_argument(
        "--start-timeout", type=float, default=30, help="seconds to wait for a contender to answer"
    )
    ap.add_argument(
        "--json", type=Path, help="JSON output (default results/<upstream>-<time>.json)"
    )
    ap.add_argument(
        "--markdown", type=Path, help="markdown tables (default results/<upstream>-<time>.md)"
    )
    ap.add_argument(
        "--keep-workdir", action="store_true", help="keep the temporary work dir (logs, configs)"
    )
    ap.add_argument("--dry-run", action="store_true", help="print the contender commands and exit")
    ap.add_argument(
        "--rules", type=int, default=1000, help="rules in cors-proxy-1k's config (default 1000)"
    )
    ap.add_argument(
        "--slow-mib", type=int, default=1024, help="size of /huge for the slow client (1024 MiB)"
    )
    ap.add_argument(
        "--slow-mbps", type=float, default=100, help="the slow client's read rate, MB/s (100)"
    )
    ap.add_argument(
        "--slow-limit-mib", type=float, default=60, help="RSS target in the slow check (60)"
    )
    ap.add_argument("--no-slow", action="store_true", help="skip the slow-client check")
    ap.add_argument(
        "--no-install",
        action="store_true",
        help="do not install missing tools (apt-get nginx wrk, npm ci)",
    )
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="CI mode: every contender must start and pass its checks (exit 1 otherwise); "
        "1 round of 1 s, small files, no retries; timings are reported, never judged",
    )
    ap.add_argument(
        "--against",
        metavar="CHECKOUT",
        help="also measure cors-proxy from another checkout (a directory, or a git revision "
        "of this repository), as contender cors-proxy@CHECKOUT, and compare it round by round",
    )
    args = ap.parse_args(argv)
    if args.smoke:
        args.rounds, args.duration, args.warmup, args.settle, args.retries = 1, 1, 0, 0.2, 0
        args.big_mib, args.slow_mib, args.slow_mbps = 8, 64, 200
        args.connections = min(args.connections, 10)
        if args.base_port == "18080":
            args.base_port = "auto"
    args.base_port = pick_base_port() if args.base_port == "auto" else int(args.base_port)
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    bad = set(args.scenarios) - set(SCENARIOS)
    if bad:
        ap.error(f"unknown scenarios: {sorted(bad)}")
    if args.rounds < 1 or args.duration < 1:
        ap.error("--rounds and --duration must be >= 1")
    return Options(**vars(args))


def main() -> int:
    argv = sys.argv[1:]
    return run(parse_args(argv), argv)


if __name__ == "__main__":
    sys.exit(main())
