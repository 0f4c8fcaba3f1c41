"""One timed window of wrk against a contender, with what the contender, the upstream,
wrk and everything else on the machine used meanwhile; and the slow-client memory check."""

from __future__ import annotations

import http.client
import os
import resource
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .contenders import Contender
from .options import Options
from .procfs import (
    CLK_TCK,
    RssSampler,
    cpu_snapshot,
    cpu_ticks,
    foreign_cpu,
    proc_tree,
    reset_hwm,
    rusage_s,
    status_kib,
    system_ticks,
)
from .procs import Procs
from .workload import HOST
from .wrk import run_wrk

Run = dict[str, Any]  # wrk's report plus what this module adds (the JSON report's "runs")


@dataclass(frozen=True)
class Rig:
    """What every timed window uses: the settings, the processes, wrk's scripts per
    scenario and the upstream's processes (whose CPU is reported apart)."""

    opts: Options
    procs: Procs
    scripts: dict[str, Path]
    upstream_pids: list[int]

    def wrk(self, c: Contender, sc: str, seconds: float) -> Run:
        url = f"http://{HOST}:{c.port}{c.prefix}{'/big' if sc == 'big' else '/api/hello'}"
        opts = self.opts
        conns = opts.big_connections if sc == "big" else opts.connections
        timeout_s = 60 if sc == "big" else 5
        r = run_wrk(
            self.procs, opts.cpu_wrk, opts.threads, url, self.scripts[sc], conns, seconds, timeout_s
        )
        r["url"], r["connections"] = url, conns
        return r


def warm_up(rig: Rig, c: Contender, sc: str) -> None:
    """Unrecorded load before a window (pools, caches, JITs of the contenders)."""
    rig.wrk(c, sc, rig.opts.warmup)


def measure(rig: Rig, c: Contender, sc: str) -> Run:
    pids = proc_tree(c.pid)
    up_pids = [p for p in rig.upstream_pids if p not in pids]
    hwm_reset = reset_hwm(pids)
    sampler = RssSampler(pids)
    sampler.start()
    ours0 = set(proc_tree(os.getpid()))
    snap0 = cpu_snapshot()
    t0, cpu0, up0 = time.monotonic(), cpu_ticks(pids), cpu_ticks(up_pids)
    sys0, kids0 = system_ticks(), rusage_s(resource.RUSAGE_CHILDREN)
    try:
        r = rig.wrk(c, sc, rig.opts.duration)
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
    url, conns = r.pop("url"), r.pop("connections")
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


def slow_download(opts: Options, c: Contender, size: int) -> dict[str, Any]:
    """One client reads /huge at about --slow-mbps through contender c; peak RSS of c's tree.

    The client's receive buffer is small and it reads 64 KiB at a time at a fixed rate, so
    a proxy that does not apply back-pressure to its upstream has to hold the difference."""
    pids = proc_tree(c.pid)
    hwm_reset = reset_hwm(pids)
    rss0 = status_kib(pids, "VmRSS")
    sampler = RssSampler(pids)
    sampler.start()
    cpu0, t0 = cpu_ticks(pids), time.monotonic()
    rate = opts.slow_mbps * 1e6
    n, status, err = 0, 0, ""
    conn = http.client.HTTPConnection(HOST, c.port, timeout=30)
    try:
        conn.connect()
        assert conn.sock is not None
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        conn.request("GET", c.prefix + "/huge", headers={"Origin": opts.origin})
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
