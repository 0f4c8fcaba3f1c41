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
Stdlib only (the chart needs matplotlib: bench/chart.py).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import http.client
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
HOST = "127.0.0.1"
HELLO_BODY = '{"message":"hello","n":42}'
PREFLIGHT_METHOD = "PUT"
COOKIE = "session=0123456789abcdef"
PREFLIGHT_HEADERS = "content-type,x-requested-with"
SCENARIOS = ("small", "preflight", "big")  # timed with wrk; "slow" runs after them
SCENARIO_TITLES = {
    "small": "small GET /api/hello with Origin and a Cookie (credentials)",
    "preflight": f"preflight OPTIONS /api/hello (Origin, ACRM {PREFLIGHT_METHOD}, ACRH "
    "{PREFLIGHT_HEADERS})",
    "big": "large download GET /big (64 MiB) with Origin",
}
BASELINES = ("direct", "nginx-cors")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes


class Procs:
    """Every process the harness starts; stopped by process-group id, never by name."""

    def __init__(self) -> None:
        self.items: list[tuple[str, subprocess.Popen]] = []
        self._lock = threading.Lock()

    def start(
        self,
        name: str,
        argv: list[str],
        logfile: Path,
        cpu: int | None,
        env: dict[str, str] | None = None,
        cwd: Path = BENCH_DIR,
    ) -> subprocess.Popen:
        argv = pin_argv(cpu) + argv
        with open(logfile, "ab") as out:
            p = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=cwd,
            )
        with self._lock:
            self.items.append((name, p))
        return p

    def stop(self, p: subprocess.Popen, grace: float = 5.0) -> None:
        """SIGTERM the group p leads, then SIGKILL whatever of p's own tree is left.

        Only PIDs seen as p's descendants and still in p's process group are signalled,
        so an exited-and-reused PID can never be hit."""
        if p.poll() is not None and not pgrp_members(p.pid):
            return
        tree = proc_tree(p.pid) if p.poll() is None else pgrp_members(p.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)  # p was started as leader of its own session/group
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (
            p.poll() is None or any(pid_in_group(x, p.pid) for x in tree)
        ):
            time.sleep(0.05)
        if p.poll() is None:
            p.kill()
        for pid in tree:
            if pid != p.pid and pid_in_group(pid, p.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=5)

    def stop_all(self) -> None:
        with self._lock:
            items = list(reversed(self.items))
            self.items.clear()
        for _name, p in items:
            self.stop(p)


PROCS = Procs()
PIN_ENABLED = True
NICE = 0


def pin_argv(cpu: int | None) -> list[str]:
    prefix = ["nice", "-n", str(NICE)] if NICE else []
    if cpu is None or not PIN_ENABLED:
        return prefix
    if shutil.which("taskset"):
        return [*prefix, "taskset", "-c", str(cpu)]
    # No taskset: the same syscall through python, which then execs the program.
    return [
        *prefix,
        sys.executable,
        "-c",
        "import os,sys; os.sched_setaffinity(0,{int(sys.argv[1])}); os.execvp(sys.argv[2], "
        "sys.argv[2:])",
        str(cpu),
    ]


def _raise_exit(signum, _frame):
    log(f"got signal {signum}; stopping everything this run started")
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------- /proc helpers


def pid_in_group(pid: int, pgid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0] != "Z" and int(fields[2]) == pgid
    except (OSError, IndexError, ValueError):
        return False


def pgrp_members(pgid: int) -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit() and pid_in_group(int(d), pgid)]


def proc_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, stack = [root], [root]
    while stack:
        for c in children.get(stack.pop(), []):
            out.append(c)
            stack.append(c)
    return out


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def status_kib(pids: list[int], key: str) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
                        break
        except (OSError, ValueError):
            pass
    return total


def reset_hwm(pids: list[int]) -> bool:
    ok = True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
        except OSError:
            ok = False
    return ok


def system_ticks() -> dict[str, int]:
    """Aggregate /proc/stat 'cpu' line. busy = user+nice+system+irq+softirq: with tick-based
    accounting the irq/softirq ticks are also charged to the interrupted task's stime, so this
    is what the per-process utime+stime of all processes add up to."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return {
        "busy": v[0] + v[1] + v[2] + v[5] + v[6],
        "softirq": v[6],
        "steal": v[7] if len(v) > 7 else 0,
    }


def cpu_snapshot() -> dict[int, tuple[int, bool, str]]:
    """pid -> (utime+stime+cutime+cstime ticks, is kernel thread, comm) for every process."""
    snap = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        head, rest = s.rsplit(")", 1)
        v = rest.split()
        try:
            ticks = int(v[11]) + int(v[12]) + int(v[13]) + int(v[14])
            snap[int(d)] = (
                ticks,
                bool(int(v[6]) & 0x00200000),
                head.split("(", 1)[1],
            )  # PF_KTHREAD
        except (IndexError, ValueError):
            continue
    return snap


def foreign_cpu(
    before: dict, after: dict, ours: set[int]
) -> tuple[float, float, list[tuple[str, float]]]:
    """Ticks used between two snapshots by processes that are not ours: (user space, kernel "
    "threads, top)."""
    user = kern = 0
    per: dict[str, int] = {}
    for pid, (ticks, kthread, comm) in after.items():
        if pid in ours:
            continue
        d = ticks - before.get(pid, (0, False, ""))[0]
        if d <= 0:
            continue
        if kthread:
            kern += d
        else:
            user += d
            per[comm] = per.get(comm, 0) + d
    top = sorted(per.items(), key=lambda kv: -kv[1])[:3]
    return user, kern, top


def rusage_s(who: int) -> float:
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


class RssSampler(threading.Thread):
    def __init__(self, pids: list[int], interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pids, self.interval, self.peak = pids, interval, 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, status_kib(self.pids, "VmRSS"))
            self._halt.wait(self.interval)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


# --------------------------------------------------------------------------- HTTP checks


def http_request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    timeout: float = 10.0,
    sink_body: bool = False,
):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        if sink_body:
            h, n = hashlib.sha256(), 0
            while chunk := resp.read(1 << 20):
                h.update(chunk)
                n += len(chunk)
            body = (n, h.hexdigest())
        else:
            body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.getheaders(), body
    finally:
        conn.close()


def wait_ready(c: Contender, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if c.proc is not None and c.proc.poll() is not None:
            raise RuntimeError(f"{c.name} exited with {c.proc.returncode}\n{tail(c.logfile)}")
        try:
            http_request(c.port, "GET", c.prefix + "/api/hello", {}, timeout=2)
            return
        except (OSError, http.client.HTTPException) as e:
            last = repr(e)
            time.sleep(0.1)
    raise RuntimeError(
        f"{c.name} not ready on port {c.port} after {timeout}s ({last})\n{tail(c.logfile)}"
    )


def port_busy(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def tail(path: Path | None, n: int = 20) -> str:
    if not path or not path.exists():
        return ""
    lines = path.read_text(errors="replace").splitlines()[-n:]
    return "\n".join("    | " + line for line in lines)


# --------------------------------------------------------------------------- contenders


@dataclass
class Contender:
    name: str
    argv: list[str]
    port: int
    prefix: str = ""
    expects_cors: bool = True
    note: str = ""
    logfile: Path | None = None
    proc: subprocess.Popen | None = None
    idle_rss_kib: int = 0
    validation: dict = field(default_factory=dict)
    dead: str = ""
    default: bool = True  # False: runs only when named in --only
    cwd: Path = BENCH_DIR  # cors-proxy runs from the checkout (python -m proxy)
    scenarios: list[str] | None = None  # None: every scenario (--contender-scenarios)


def render(template: Path, out: Path, values: dict[str, str]) -> Path:
    text = template.read_text()
    for k, v in values.items():
        text = text.replace(f"@{k}@", v)
    leftover = re.findall(r"@[A-Z_]+@", text)
    if leftover:
        raise RuntimeError(f"unfilled placeholders in {template.name}: {leftover}")
    out.write_text(text)
    return out


def nginx_argv(workdir: Path, name: str, conf: Path) -> list[str]:
    (workdir / f"{name}-tmp").mkdir(mode=0o755, exist_ok=True)
    return [
        "nginx",
        "-p",
        str(workdir),
        "-e",
        str(workdir / f"{name}.startup.log"),
        "-c",
        str(conf),
    ]


def fill(template: str, values: dict[str, str]) -> list[str]:
    def sub(m: re.Match) -> str:
        return values.get(m.group(1), m.group(0))

    return shlex.split(re.sub(r"\{(\w+)\}", sub, template))


# --------------------------------------------------------------------------- wrk

WRK_SCRIPT = r"""
-- generated by run.py
wrk.method = "%(method)s"
%(headers)s
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"duration_us":%%.0f,"requests":%%.0f,"bytes":%%.0f,' ..
    '"err_connect":%%.0f,"err_read":%%.0f,"err_write":%%.0f,' ..
    '"err_status":%%.0f,"err_timeout":%%.0f,' ..
    '"lat_min_us":%%.0f,"lat_max_us":%%.0f,"lat_mean_us":%%.1f,"lat_stdev_us":%%.1f,' ..
    '"p50_us":%%.0f,"p90_us":%%.0f,"p99_us":%%.0f,"p999_us":%%.0f}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
"""


def write_wrk_scripts(workdir: Path, origin: str) -> dict[str, Path]:
    def hdrs(d: dict[str, str]) -> str:
        return "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in d.items())

    specs = {
        "small": ("GET", {"Origin": origin, "Cookie": COOKIE}),
        "preflight": (
            "OPTIONS",
            {
                "Origin": origin,
                "Access-Control-Request-Method": PREFLIGHT_METHOD,
                "Access-Control-Request-Headers": PREFLIGHT_HEADERS,
            },
        ),
        "big": ("GET", {"Origin": origin}),
    }
    out = {}
    for sc, (method, h) in specs.items():
        p = workdir / f"wrk-{sc}.lua"
        p.write_text(WRK_SCRIPT % {"method": method, "headers": hdrs(h)})
        out[sc] = p
    return out


def run_wrk(args, url: str, script: Path, conns: int, seconds: float, timeout_s: float) -> dict:
    argv = [
        *pin_argv(args.cpu_wrk),
        "wrk",
        f"-t{min(args.threads, conns)}",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        f"{timeout_s:g}s",
        "-s",
        str(script),
        url,
    ]
    p = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
    )
    with PROCS._lock:
        PROCS.items.append(("wrk", p))
    try:
        out, _ = p.communicate(timeout=seconds + timeout_s + 30)
    except subprocess.TimeoutExpired:
        PROCS.stop(p)
        raise RuntimeError(f"wrk hung: {' '.join(argv)}") from None
    except BaseException:  # signal / Ctrl-C while waiting: wrk must not outlive us
        PROCS.stop(p)
        raise
    finally:
        with PROCS._lock:
            PROCS.items[:] = [it for it in PROCS.items if it[1] is not p]
    m = re.search(r"^BENCHJSON (\{.*\})$", out, re.M)
    if not m:
        raise RuntimeError(f"wrk failed (rc {p.returncode}): {' '.join(argv)}\n{out}")
    r = json.loads(m.group(1))
    r["wrk_argv"] = argv
    return r


# --------------------------------------------------------------------------- main flow


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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
    return args


PORT_SPAN = 30  # base .. base+29: upstream, contenders, the Flask upstream, extra contenders


def pick_base_port() -> int:
    """A base port whose whole span is free now (several people share this machine)."""
    import random

    for _ in range(50):
        base = random.randrange(20000, 60000 - PORT_SPAN)
        if not any(port_busy(p) for p in range(base, base + PORT_SPAN)):
            return base
    raise SystemExit("no free port range found for --base-port auto")


def ensure_tools(args) -> list[str]:
    """Install what is missing when we can; returns what is still missing.

    nginx and wrk come from apt-get (as root, Debian/Ubuntu); local-cors-proxy from
    `npm ci` in bench/ (package-lock.json pins it and its dependencies)."""
    missing_apt = [
        t for t in ("nginx", "wrk") if not (shutil.which(t) or Path(f"/usr/sbin/{t}").exists())
    ]
    if shutil.which("npm") is None:
        missing_apt.append("npm")
    if missing_apt and not args.no_install:
        if os.geteuid() == 0 and shutil.which("apt-get"):
            log(f"installing {' '.join(missing_apt)} with apt-get")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            subprocess.run(["apt-get", "update"], env=env, check=False)
            subprocess.run(
                ["apt-get", "install", "-y", "--no-install-recommends", *missing_apt],
                env=env,
                check=False,
            )
        else:
            log(
                f"missing {' '.join(missing_apt)}; install them (apt-get install "
                f"{' '.join(missing_apt)})"
            )
    lcp = BENCH_DIR / "node_modules" / "local-cors-proxy" / "bin" / "lcp.js"
    if not lcp.exists() and shutil.which("npm") and not args.no_install:
        log("installing local-cors-proxy: npm ci in bench/")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BENCH_DIR, check=False)
    if Path("/usr/sbin/nginx").exists() and not shutil.which("nginx"):
        os.environ["PATH"] += os.pathsep + "/usr/sbin"
    still = [t for t in ("nginx", "wrk", "node") if not shutil.which(t)]
    if not lcp.exists():
        still.append("local-cors-proxy (npm ci in bench/)")
    return still


def versions() -> dict[str, str]:
    def cmd(argv: list[str]) -> str:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "missing"

    def pkg(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "missing"

    def npm_pkg(name: str) -> str:
        p = BENCH_DIR / "node_modules" / name / "package.json"
        try:
            return json.loads(p.read_text())["version"]
        except (OSError, ValueError, KeyError):
            return "missing"

    cpu = "unknown"
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    return {
        "wrk": cmd(["wrk", "-v"]),
        "nginx": cmd(["nginx", "-v"]),
        "node": cmd(["node", "--version"]),
        "local-cors-proxy": npm_pkg("local-cors-proxy"),
        "express": npm_pkg("express"),
        "request": npm_pkg("request"),
        "python": platform.python_version(),
        "aiohttp": pkg("aiohttp"),
        "uvloop": pkg("uvloop"),
        "httptools": pkg("httptools"),
        "flask": pkg("flask"),
        "werkzeug": pkg("werkzeug"),
        "cors-proxy": git_rev(),
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": str(os.cpu_count()),
        "affinity": ",".join(map(str, sorted(os.sched_getaffinity(0)))),
    }


def cors_proxy_argv(port: int, upstream_url: str, extra: list[str]) -> list[str]:
    """The project's proxy from this checkout (cwd REPO_DIR), with the real CLI's flags."""
    return [
        sys.executable,
        "-m",
        "proxy",
        "--listen",
        f"{HOST}:{port}",
        "--upstream",
        upstream_url,
        *extra,
    ]


def write_rules_config(path: Path, origin: str, n: int) -> Path:
    """A config of n rules (CONTRACT.md format; JSON is YAML) in which the last one serves us.

    Rules pick by path first (the first rule whose paths match wins), then check the origin.
    Rules 1..n-1 cover /svc<i>/* with two origins each (an exact one and a one-label glob), so
    every request path is tested against all of them; the last rule covers every path, lists
    n origins with `origin` at the end, and allows what --origin allows."""
    rules: list[dict] = [
        {
            "name": f"svc{i}",
            "paths": [f"/svc{i}/*"],
            "origins": [f"http://app{i}.test:3000", f"https://*.team{i}.example.com"],
            "allow_methods": ["GET", "POST"],
            "allow_headers": ["Content-Type"],
            "allow_credentials": True,
        }
        for i in range(1, n)
    ]
    rules.append(
        {
            "name": "frontend",
            "origins": [f"http://dev{i}.localhost:3000" for i in range(1, n)] + [origin],
            "allow_methods": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            "allow_headers": ["*"],
            "expose_headers": ["*"],
            "allow_credentials": True,
            "max_age": 600,
        }
    )
    path.write_text(json.dumps({"rules": rules}, indent=1))
    return path


def git_rev() -> str:
    try:
        r = subprocess.run(
            ["git", "-C", str(REPO_DIR), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return r.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def build(args, workdir: Path, big_path: Path) -> tuple[Contender, list[Contender]]:
    bp = args.base_port
    up_port = bp if args.upstream == "nginx" else bp + 10
    upstream_url = f"http://{HOST}:{up_port}"

    def nginx_upstream(name: str, port: int) -> list[str]:
        conf = render(
            BENCH_DIR / "conf" / "nginx-upstream.conf.in",
            workdir / f"{name}.conf",
            {
                "WORKERS": str(args.nginx_workers),
                "WORKDIR": str(workdir),
                "NAME": name,
                "PORT": str(port),
                "HELLO_BODY": HELLO_BODY,
            },
        )
        return nginx_argv(workdir, name, conf)

    def flask_upstream(port: int) -> list[str]:
        return [
            sys.executable,
            str(BENCH_DIR / "upstream" / "flask_app.py"),
            "--port",
            str(port),
            "--big",
            str(big_path),
            "--huge",
            str(workdir / "huge.bin"),
            "--body",
            HELLO_BODY,
            "--quiet",
        ]

    up_argv = (
        nginx_upstream("upstream", up_port) if args.upstream == "nginx" else flask_upstream(up_port)
    )
    upstream = Contender(
        "upstream",
        up_argv,
        up_port,
        expects_cors=False,
        note=f"{args.upstream} upstream shared by all proxies",
    )

    direct_argv = (
        nginx_upstream("direct", bp + 2) if args.upstream == "nginx" else flask_upstream(bp + 2)
    )
    cors_conf = render(
        BENCH_DIR / "conf" / "nginx-cors.conf.in",
        workdir / "nginx-cors.conf",
        {
            "WORKERS": str(args.nginx_workers),
            "WORKDIR": str(workdir),
            "NAME": "nginx-cors",
            "PORT": str(bp + 1),
            "UPSTREAM_HOSTPORT": f"{HOST}:{up_port}",
            "PROXY_BUFFERING": args.nginx_proxy_buffering,
        },
    )
    lcp_cli = BENCH_DIR / "node_modules" / "local-cors-proxy" / "bin" / "lcp.js"
    node = shutil.which("node") or "node"
    rules_conf = write_rules_config(workdir / "rules-1k.yaml", args.origin, args.rules)
    cs = [
        Contender(
            "direct",
            direct_argv,
            bp + 2,
            expects_cors=False,
            note=f"{args.upstream} alone (own instance, contender CPU), no proxy, no CORS",
        ),
        Contender(
            "nginx-cors",
            nginx_argv(workdir, "nginx-cors", cors_conf),
            bp + 1,
            note=f"nginx reverse proxy + CORS, proxy_buffering {args.nginx_proxy_buffering}",
        ),
        Contender(
            "lcp",
            [
                node,
                "--require",
                str(BENCH_DIR / "contenders" / "lcp_loopback.js"),
                str(lcp_cli),
                "--proxyUrl",
                upstream_url,
                "--port",
                str(bp + 3),
            ],
            bp + 3,
            prefix="/proxy",
            note="local-cors-proxy 1.1.0 (express + request), logs each request to stdout",
        ),
        Contender(
            "cors-proxy",
            cors_proxy_argv(bp + 4, upstream_url, ["--origin", args.origin]),
            bp + 4,
            cwd=REPO_DIR,
            note="this checkout, one rule (--origin)",
        ),
        Contender(
            "aiohttp-floor",
            [
                sys.executable,
                str(BENCH_DIR / "contenders" / "aiohttp_floor.py"),
                str(bp + 6),
                upstream_url,
                args.origin,
            ],
            bp + 6,
            cwd=REPO_DIR,
            scenarios=["small", "preflight"],
            note="yardstick: aiohttp web.Server + cors-proxy's upstream client, fixed CORS "
            "headers, no policy, no log (the design's floor)",
        ),
        Contender(
            "httptools-floor",
            [
                sys.executable,
                str(BENCH_DIR / "contenders" / "httptools_floor.py"),
                str(bp + 7),
                upstream_url,
                args.origin,
            ],
            bp + 7,
            cwd=REPO_DIR,
            scenarios=["small", "preflight"],
            note="yardstick: the fast lane's shape (httptools protocol) + cors-proxy's upstream "
            "client, fixed CORS headers, no policy, no log (the fast lane's floor)",
        ),
        Contender(
            "cors-proxy-1k",
            cors_proxy_argv(bp + 5, upstream_url, ["--config", str(rules_conf)]),
            bp + 5,
            cwd=REPO_DIR,
            scenarios=["small", "preflight"],
            note=f"this checkout, --config with {args.rules:,} rules; ours is the last one",
        ),
    ]
    extra = list(args.contender)
    if os.environ.get("BENCH_PROJECT_CMD"):
        extra.append("project=" + os.environ["BENCH_PROJECT_CMD"])
    prefixes = dict(p.split("=", 1) for p in args.prefix)
    if os.environ.get("BENCH_PROJECT_PREFIX"):
        prefixes.setdefault("project", os.environ["BENCH_PROJECT_PREFIX"])
    for i, spec in enumerate(extra):
        if "=" not in spec:
            raise SystemExit(f"--contender needs NAME=CMD, got {spec!r}")
        name, template = spec.split("=", 1)
        port = bp + 20 + i
        values = {
            "port": str(port),
            "upstream": upstream_url,
            "upstream_host": HOST,
            "upstream_port": str(up_port),
            "python": sys.executable,
            "node": node,
            "bench_dir": str(BENCH_DIR),
            "repo": str(REPO_DIR),
            "workdir": str(workdir),
            "origin": args.origin,
        }
        cs = [c for c in cs if c.name != name]
        cs.append(Contender(name, fill(template, values), port, note="user contender: " + template))
    for c in cs:
        if c.name in prefixes:
            c.prefix = prefixes[c.name].rstrip("/")
    for spec in args.contender_scenarios:
        name, _, scs = spec.partition("=")
        for c in cs:
            if c.name == name:
                c.scenarios = [x for x in scs.split(",") if x]
    only = {s for s in args.only.split(",") if s}
    skip = {s for s in args.skip.split(",") if s}
    cs = [c for c in cs if (c.name in only or (not only and c.default)) and c.name not in skip]
    return upstream, cs


def available(c: Contender) -> str:
    exe = c.argv[0]
    if shutil.which(exe) is None and not Path(exe).exists():
        return f"{exe} not found"
    if c.name == "lcp" and not Path(c.argv[3]).exists():
        return "local-cors-proxy not installed (run `npm ci` in the bench folder)"
    if c.cwd == REPO_DIR and not (REPO_DIR / "proxy" / "__main__.py").exists():
        return f"no proxy package in {REPO_DIR}"
    return ""


def validate(c: Contender, args, big_size: int, big_sha: str) -> dict:
    """Functional check before timing anything; a failure is reported, not fatal."""
    res: dict = {}
    o = args.origin
    try:
        st, h, _raw, body = http_request(
            c.port, "GET", c.prefix + "/api/hello", {"Origin": o, "Cookie": COOKIE}
        )
        res["small"] = {
            "status": st,
            "body_ok": body == HELLO_BODY.encode(),
            "acao": h.get("access-control-allow-origin"),
        }
        st, h, raw, _ = http_request(
            c.port,
            "OPTIONS",
            c.prefix + "/api/hello",
            {
                "Origin": o,
                "Access-Control-Request-Method": PREFLIGHT_METHOD,
                "Access-Control-Request-Headers": PREFLIGHT_HEADERS,
            },
        )
        res["preflight"] = {
            "status": st,
            "acao": h.get("access-control-allow-origin"),
            "acam": h.get("access-control-allow-methods"),
            "acah": h.get("access-control-allow-headers"),
            "acao_lines": sum(1 for k, _ in raw if k.lower() == "access-control-allow-origin"),
        }
        st, h, _raw, (n, sha) = http_request(
            c.port, "GET", c.prefix + "/big", {"Origin": o}, timeout=60, sink_body=True
        )
        res["big"] = {
            "status": st,
            "bytes_ok": n == big_size,
            "sha_ok": sha == big_sha,
            "acao": h.get("access-control-allow-origin"),
        }
    except Exception as e:
        res["error"] = repr(e)
        res["ok"] = False
        return res
    cors_ok = all(res[k]["acao"] in (o, "*") for k in ("small", "preflight", "big"))
    pre = res["preflight"]
    pre_ok = (
        200 <= pre["status"] < 300
        and pre["acao_lines"] == 1
        and (PREFLIGHT_METHOD in (pre["acam"] or "") or (pre["acam"] or "").strip() == "*")
    )
    func_ok = (
        res["small"]["status"] == 200
        and res["small"]["body_ok"]
        and res["big"]["status"] == 200
        and res["big"]["bytes_ok"]
        and res["big"]["sha_ok"]
    )
    res["functional_ok"] = func_ok
    res["cors_ok"] = cors_ok and pre_ok
    res["ok"] = func_ok and (res["cors_ok"] or not c.expects_cors)
    return res


def measure(
    args,
    c: Contender,
    sc: str,
    scripts: dict[str, Path],
    seconds: float,
    record: bool,
    upstream_pids: list[int] = (),
) -> dict | None:
    url = f"http://{HOST}:{c.port}{c.prefix}{'/big' if sc == 'big' else '/api/hello'}"
    conns = args.big_connections if sc == "big" else args.connections
    timeout_s = 60 if sc == "big" else 5
    if not record:
        run_wrk(args, url, scripts[sc], conns, seconds, timeout_s)
        return None
    pids = proc_tree(c.proc.pid)
    up_pids = [p for p in upstream_pids if p not in pids]
    hwm_reset = reset_hwm(pids)
    sampler = RssSampler(pids)
    sampler.start()
    ours0 = set(proc_tree(os.getpid()))
    snap0 = cpu_snapshot()
    t0, cpu0, up0 = time.monotonic(), cpu_ticks(pids), cpu_ticks(up_pids)
    sys0, kids0 = system_ticks(), rusage_s(resource.RUSAGE_CHILDREN)
    try:
        r = run_wrk(args, url, scripts[sc], conns, seconds, timeout_s)
    finally:
        sampled = sampler.stop()
    wall, cpu_s = time.monotonic() - t0, (cpu_ticks(pids) - cpu0) / CLK_TCK
    up_s = (cpu_ticks(up_pids) - up0) / CLK_TCK
    wrk_s = rusage_s(resource.RUSAGE_CHILDREN) - kids0
    sys1, snap1 = system_ticks(), cpu_snapshot()
    other_t, kern_t, top = foreign_cpu(snap0, snap1, ours0 | set(proc_tree(os.getpid())))
    busy_s = (sys1["busy"] - sys0["busy"]) / CLK_TCK
    hwm = status_kib(pids, "VmHWM")
    dur = r["duration_us"] / 1e6
    r.update(
        {
            # CPU used during the window by user-space processes that this harness did not start
            # (in % of one core; tick-granular, so +-1 point of jitter): the noise indicator.
            "other_pct": 100 * other_t / CLK_TCK / wall,
            "other_top": [(comm, round(100 * t / CLK_TCK / wall, 1)) for comm, t in top],
            "kthreads_pct": 100 * kern_t / CLK_TCK / wall,
            "box_busy_pct": 100 * busy_s / wall,
            "steal_pct": 100 * (sys1["steal"] - sys0["steal"]) / CLK_TCK / wall,
            "softirq_pct": 100 * (sys1["softirq"] - sys0["softirq"]) / CLK_TCK / wall,
            "wrk_cpu_pct": 100 * wrk_s / wall,
            "upstream_cpu_pct": 100 * up_s / wall,
        }
    )
    r.update(
        {
            "contender": c.name,
            "scenario": sc,
            "url": url,
            "connections": conns,
            "rps": r["requests"] / dur,
            "mbps": r["bytes"] / dur / 1e6,
            "p50_ms": r["p50_us"] / 1000,
            "p99_ms": r["p99_us"] / 1000,
            "errors": r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"],
            "non_2xx_3xx": r["err_status"],
            "peak_rss_kib": hwm if hwm_reset else sampled,
            "peak_rss_source": "VmHWM" if hwm_reset else "sampled VmRSS",
            "sampled_peak_rss_kib": sampled,
            "cpu_s": cpu_s,
            "cpu_pct": 100 * cpu_s / wall,
            "wall_s": wall,
            "pids": pids,
        }
    )
    r["cpu_us_per_req"] = 1e6 * cpu_s / r["requests"] if r["requests"] else None
    r["cpu_s_per_gb"] = cpu_s / (r["bytes"] / 1e9) if r["bytes"] else None
    return r


def slow_download(args, c: Contender, size: int) -> dict:
    """One client reads /huge at about --slow-mbps through contender c; peak RSS of c's tree.

    The client's receive buffer is small and it reads 64 KiB at a time at a fixed rate, so
    a proxy that does not apply back-pressure to its upstream has to hold the difference."""
    pids = proc_tree(c.proc.pid)
    hwm_reset = reset_hwm(pids)
    rss0 = status_kib(pids, "VmRSS")
    sampler = RssSampler(pids)
    sampler.start()
    cpu0, t0 = cpu_ticks(pids), time.monotonic()
    rate = args.slow_mbps * 1e6
    n, status, err = 0, 0, ""
    conn = http.client.HTTPConnection(HOST, c.port, timeout=30)
    try:
        conn.connect()
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        conn.request("GET", c.prefix + "/huge", headers={"Origin": args.origin})
        resp = conn.getresponse()
        status = resp.status
        while chunk := resp.read(64 << 10):
            n += len(chunk)
            ahead = n / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    except (OSError, http.client.HTTPException) as e:
        err = repr(e)
    finally:
        conn.close()
        sampled = sampler.stop()
    wall = time.monotonic() - t0
    cpu_s = (cpu_ticks(pids) - cpu0) / CLK_TCK
    hwm = status_kib(pids, "VmHWM")
    peak = hwm if hwm_reset else sampled
    return {
        "contender": c.name,
        "status": status,
        "bytes": n,
        "bytes_ok": n == size and status == 200,
        "error": err,
        "seconds": wall,
        "mbps": n / wall / 1e6,
        "cpu_s": cpu_s,
        "rss_before_mib": rss0 / 1024,
        "peak_rss_mib": peak / 1024,
        "peak_rss_source": "VmHWM" if hwm_reset else "sampled VmRSS",
    }


def slow_table(slow: list[dict], size_mib: int, mbps: float, limit_mib: float) -> str:
    out = [
        f"### slow: GET /huge ({size_mib:,} MiB) read by one client at ~{mbps:g} MB/s\n",
        "Peak RSS of the proxy's process tree while the client reads; the target for cors-proxy "
        "is "
        f"< {limit_mib:g} MiB (back-pressure in bytes, not a buffered body).\n",
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
            f"| {'yes' if r['peak_rss_mib'] < limit_mib else 'no'} |"
        )
    out.append("")
    return "\n".join(out)


def rules_table(runs: list[dict], base: str = "cors-proxy", many: str = "cors-proxy-1k") -> str:
    """1 vs N configured rules: per-round ratios of the same proxy with the two configs."""
    rows = []
    for sc in ("small", "preflight"):
        by_round: dict[int, dict[str, dict]] = {}
        for r in runs:
            if r["scenario"] == sc and r["contender"] in (base, many):
                by_round.setdefault(r["round"], {})[r["contender"]] = r
        pairs = [(d[many], d[base]) for d in by_round.values() if base in d and many in d]
        if not pairs:
            continue
        rps = statistics.median(m["rps"] / b["rps"] for m, b in pairs if b["rps"])
        cpu = statistics.median(
            m["cpu_us_per_req"] / b["cpu_us_per_req"]
            for m, b in pairs
            if m["cpu_us_per_req"] and b["cpu_us_per_req"]
        )
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
            "| scenario | req/s × one rule | difference | CPU µs/req × one rule | peak RSS MiB (1 "
            "/ 1k) |",
            "|---|--:|--:|--:|--:|",
            *rows,
            "",
        ]
    )


def summarize(runs: list[dict], contenders: list[Contender], scenarios: list[str]) -> dict:
    by: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        by.setdefault((r["contender"], r["scenario"]), []).append(r)
    summary: dict = {}
    for sc in scenarios:
        metric = "mbps" if sc == "big" else "rps"
        summary[sc] = {"ratio_metric": metric, "contenders": {}}
        for c in contenders:
            rs = by.get((c.name, sc), [])
            if not rs:
                continue
            vals = [r[metric] for r in rs]
            med = statistics.median(vals)
            s = {
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
                ratios = []
                for r in rs:
                    b = next((x for x in by.get((base, sc), []) if x["round"] == r["round"]), None)
                    if b and b[metric]:
                        ratios.append(r[metric] / b[metric])
                s[f"ratio_{base}"] = statistics.median(ratios) if ratios else None
                s[f"ratio_{base}_per_round"] = ratios
                cost = "cpu_s_per_gb" if sc == "big" else "cpu_us_per_req"
                cratios = []
                for r in rs:
                    b = next((x for x in by.get((base, sc), []) if x["round"] == r["round"]), None)
                    if b and b[cost] and r[cost]:
                        cratios.append(r[cost] / b[cost])
                s[f"cpu_cost_ratio_{base}"] = statistics.median(cratios) if cratios else None
            summary[sc]["contenders"][c.name] = s
    return summary


def fmt(v, spec: str, dash: str = "–") -> str:
    return dash if v is None else format(v, spec)


def tables(summary: dict, args, contenders: list[Contender]) -> str:
    out = []
    for sc, data in summary.items():
        conns = args.big_connections if sc == "big" else args.connections
        metric = data["ratio_metric"]
        out.append(f"### {sc}: {SCENARIO_TITLES[sc]}\n")
        out.append(
            f"wrk -t{args.threads} -c{conns}, {args.duration:g} s x {args.rounds} rounds, "
            "medians; ratios = median of per-round ratios of "
            f"**{'MB/s' if metric == 'mbps' else 'req/s'}**\n"
        )
        cost = "CPU s/GB" if sc == "big" else "CPU µs/req"
        out.append(
            "| contender | req/s | MB/s | ±spread | p50 ms | p99 ms | peak RSS MiB | CPU % | "
            f"{cost} "
            f"| wrk CPU % | other % | × direct | × nginx-cors | errors |"
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
    # at a glance
    out.append("### ratios at a glance (median of per-round ratios)\n")
    out.append(
        "Throughput: req/s (small, preflight) or MB/s (big), contender / baseline, higher is "
        "better. "
        "CPU cost: the contender's CPU per request (per GB for big) / nginx-cors's, lower is "
        "better; "
        "it is the number least moved by background load.\n"
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


def main(argv: list[str] | None = None) -> int:
    global PIN_ENABLED, NICE
    args = parse_args(argv)
    NICE = args.nice
    affinity = os.sched_getaffinity(0)
    PIN_ENABLED = not args.no_pin and all(
        cpu in affinity for cpu in (args.cpu_wrk, args.cpu_upstream, args.cpu_contender)
    )
    if not args.no_pin and not PIN_ENABLED:
        log(
            f"warning: CPUs {args.cpu_wrk}/{args.cpu_upstream}/{args.cpu_contender} not all in "
            "affinity "
            f"{sorted(affinity)}; not pinning"
        )
    if not args.dry_run:
        still = ensure_tools(args)
        if still:
            log(f"still missing: {', '.join(still)} (the contenders that need them are skipped)")
    if shutil.which("wrk") is None and not args.dry_run:
        log("wrk not found (Debian: apt-get install wrk)")
        return 2

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)
    atexit.register(PROCS.stop_all)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix="corsbench-"))
    os.chmod(workdir, 0o755)  # nginx workers run as an unprivileged user when started as root
    results_dir = BENCH_DIR / "results"
    json_path = args.json or results_dir / f"{args.upstream}-{stamp}.json"
    md_path = args.markdown or results_dir / f"{args.upstream}-{stamp}.md"
    try:
        big_path = workdir / "big.bin"
        upstream, contenders = build(args, workdir, big_path)
        if args.dry_run:
            for c in [upstream, *contenders]:
                cpu = args.cpu_upstream if c is upstream else args.cpu_contender
                print(f"{c.name:24} :{c.port}{c.prefix}  {shlex.join(pin_argv(cpu) + c.argv)}")
            return 0
        h = hashlib.sha256()
        with open(big_path, "wb") as f:
            for _ in range(args.big_mib):
                block = os.urandom(1 << 20)
                h.update(block)
                f.write(block)
        os.chmod(big_path, 0o644)
        huge_size = args.slow_mib << 20
        with open(workdir / "huge.bin", "wb") as f:
            f.truncate(huge_size)  # sparse: zeros that take no disk space
        os.chmod(workdir / "huge.bin", 0o644)
        big_size, big_sha = args.big_mib << 20, h.hexdigest()

        vers = versions()
        log("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
        pin_desc = (
            f"wrk CPU {args.cpu_wrk}, upstream CPU {args.cpu_upstream}, contender CPU "
            f"{args.cpu_contender} (taskset -c)"
            if PIN_ENABLED
            else "not pinned"
        )
        if NICE:
            pin_desc += f", nice {NICE}"
        log(f"pinning: {pin_desc}; work dir {workdir}")

        for c in [upstream, *contenders]:
            if port_busy(c.port):
                raise SystemExit(
                    f"port {c.port} ({c.name}) already in use; stop whatever holds it "
                    f"or pass --base-port"
                )

        upstream.logfile = workdir / "upstream.log"
        upstream.proc = PROCS.start("upstream", upstream.argv, upstream.logfile, args.cpu_upstream)
        wait_ready(upstream, args.start_timeout)
        log(f"upstream ({args.upstream}) ready on :{upstream.port}")

        ready: list[Contender] = []
        for c in contenders:
            why = available(c)
            if why:
                log(f"skip {c.name}: {why}")
                c.dead = "skipped: " + why
                continue
            c.logfile = workdir / f"{c.name}.log"
            c.proc = PROCS.start(c.name, c.argv, c.logfile, args.cpu_contender, cwd=c.cwd)
            try:
                wait_ready(c, args.start_timeout)
            except RuntimeError as e:
                log(f"skip {c.name}: {e}")
                c.dead = "did not start"
                PROCS.stop(c.proc)
                continue
            c.validation = validate(c, args, big_size, big_sha)
            c.idle_rss_kib = status_kib(proc_tree(c.proc.pid), "VmRSS")
            v = c.validation
            log(
                f"{c.name:24} :{c.port}{c.prefix} pid {c.proc.pid} idle RSS "
                f"{c.idle_rss_kib / 1024:.1f} MiB  "
                f"valid={'yes' if v.get('ok') else 'NO'} functional={v.get('functional_ok')} "
                f"cors={v.get('cors_ok')} {v.get('error', '')}"
            )
            ready.append(c)

        scripts = write_wrk_scripts(workdir, args.origin)
        upstream_pids = proc_tree(upstream.proc.pid)
        runs: list[dict] = []
        total = args.rounds * len(args.scenarios) * len(ready)
        eta = total * (args.duration + args.warmup + args.settle + 0.5)  # without retries
        log(f"{total} measured runs, about {eta / 60:.1f} min")
        for rnd in range(args.rounds):
            for sc in args.scenarios:
                k = rnd % len(ready) if ready else 0
                order = ready[k:] + ready[:k]  # rotate so no contender is always first/last
                for c in order:
                    if c.dead or (c.scenarios is not None and sc not in c.scenarios):
                        continue
                    if c.proc.poll() is not None:
                        c.dead = f"exited with {c.proc.returncode} before round {rnd + 1} {sc}"
                        log(f"{c.name} died: {c.dead}\n{tail(c.logfile)}")
                        continue
                    try:
                        if args.warmup > 0:
                            measure(args, c, sc, scripts, args.warmup, record=False)
                        attempts = []
                        for attempt in range(1 + args.retries):
                            if attempt:
                                time.sleep(args.settle)
                            attempts.append(
                                measure(
                                    args,
                                    c,
                                    sc,
                                    scripts,
                                    args.duration,
                                    record=True,
                                    upstream_pids=upstream_pids,
                                )
                            )
                            if attempts[-1]["other_pct"] <= args.max_other:
                                break
                            top = ", ".join(f"{n} {v:g}%" for n, v in attempts[-1]["other_top"])
                            log(
                                f"r{rnd + 1} {sc} {c.name}: other processes used "
                                f"{attempts[-1]['other_pct']:.0f}% of a core (> "
                                f"{args.max_other:g}%: {top})"
                                + (
                                    "; retrying"
                                    if attempt < args.retries
                                    else "; keeping the quietest"
                                )
                            )
                    except RuntimeError as e:
                        log(f"{c.name} {sc} round {rnd + 1} failed: {e}")
                        continue
                    r = min(attempts, key=lambda a: a["other_pct"])
                    r["round"] = rnd + 1
                    r["attempts"] = len(attempts)
                    r["other_pct_attempts"] = [a["other_pct"] for a in attempts]
                    runs.append(r)
                    log(
                        f"r{rnd + 1} {sc:9} {c.name:24} {r['rps']:>9,.0f} req/s {r['mbps']:>8,.1f} "
                        "MB/s "
                        f"p50 {r['p50_ms']:6.2f} p99 {r['p99_ms']:7.2f} ms  RSS "
                        f"{r['peak_rss_kib'] / 1024:6.1f} "
                        f"MiB  CPU {r['cpu_pct']:3.0f}%  wrk {r['wrk_cpu_pct']:3.0f}%  other "
                        f"{r['other_pct']:3.0f}%  err {r['errors']}+{r['non_2xx_3xx']}"
                    )
                    time.sleep(args.settle)

        slow: list[dict] = []
        if not args.no_slow:
            for c in ready:
                if c.dead or (c.scenarios is not None and "slow" not in c.scenarios):
                    continue
                r = slow_download(args, c, huge_size)
                slow.append(r)
                log(
                    f"slow {c.name:24} {r['bytes'] / 2**20:,.0f} MiB in {r['seconds']:.1f} s, peak "
                    "RSS "
                    f"{r['peak_rss_mib']:.1f} MiB "
                    f"{'' if r['bytes_ok'] else 'INCOMPLETE ' + r['error']}"
                )

        summary = summarize(runs, ready, args.scenarios)
        md = [
            f"## CORS proxy benchmark — upstream: {args.upstream}\n",
            f"command: `python3 run.py {shlex.join(argv if argv is not None else sys.argv[1:])}`  ",
            f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}  ",
            f"pinning: {pin_desc}  ",
            "versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()) + "\n",
            "| contender | port/prefix | idle RSS MiB | valid | note |",
            "|---|---|--:|---|---|",
        ]
        for c in contenders:
            v = c.validation
            valid = c.dead or ("ok" if v.get("ok") else f"FAIL {json.dumps(v)}")
            md.append(
                f"| {c.name} | :{c.port}{c.prefix} | {c.idle_rss_kib / 1024:.1f} | {valid} | "
                f"{c.note} |"
            )
        md.append("")
        md.append(tables(summary, args, ready))
        md.append(rules_table(runs))
        if slow:
            md.append(slow_table(slow, args.slow_mib, args.slow_mbps, args.slow_limit_mib))
        dead = [f"- {c.name}: {c.dead}" for c in contenders if c.dead]
        if dead:
            md.append("**not measured / died:**\n" + "\n".join(dead) + "\n")
        text = "\n".join(md)
        print(text)

        md_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        md_path.write_text(text)
        json_path.write_text(
            json.dumps(
                {
                    "argv": argv if argv is not None else sys.argv[1:],
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "config": {
                        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                    },
                    "pinning": pin_desc,
                    "versions": vers,
                    "hello_body": HELLO_BODY,
                    "big_bytes": big_size,
                    "contenders": [
                        {
                            "name": c.name,
                            "argv": c.argv,
                            "port": c.port,
                            "prefix": c.prefix,
                            "note": c.note,
                            "idle_rss_kib": c.idle_rss_kib,
                            "validation": c.validation,
                            "dead": c.dead,
                        }
                        for c in contenders
                    ],
                    "upstream": {
                        "kind": args.upstream,
                        "argv": upstream.argv,
                        "port": upstream.port,
                    },
                    "runs": runs,
                    "summary": summary,
                    "slow": slow,
                },
                indent=1,
            )
        )
        log(f"wrote {md_path} and {json_path}")
        failed = [c.name for c in contenders if c.dead or not c.validation.get("ok")]
        failed += [
            f"{r['contender']} (slow download incomplete)" for r in slow if not r["bytes_ok"]
        ]
        for c in contenders:
            log(
                f"check {c.name}: "
                f"{'FAIL ' + (c.dead or json.dumps(c.validation)) if c.name in failed else 'ok'}"
            )
        if failed:
            log(f"FAILED: {', '.join(failed)}")
            return 1
        return 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        PROCS.stop_all()
        if args.keep_workdir:
            log(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
