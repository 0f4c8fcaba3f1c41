"""One whole run: the files the upstream serves, the upstream and every contender started
and checked, interleaved rounds of wrk, the slow-client check, then the report."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import report
from .compare import checkout
from .contenders import Contender, available, build, describe, validate, wait_ready
from .log import log
from .measure import Rig, Run, measure, slow_download, warm_up
from .options import Options
from .probe import port_busy, tail
from .procfs import proc_tree, status_kib
from .procs import Procs, raise_exit
from .tools import ensure_tools, versions
from .workload import BENCH_DIR, HELLO_BODY
from .wrk import write_scripts


@dataclass(frozen=True)
class Files:
    """What the upstreams serve besides /api/hello: /big (random, checked by sha256) and
    /huge (sparse zeros, for the slow client)."""

    big: Path
    big_size: int
    big_sha: str
    huge_size: int


def run(opts: Options, argv: list[str]) -> int:
    procs = Procs()
    procs.nice = opts.nice
    affinity = os.sched_getaffinity(0)
    cpus = (opts.cpu_wrk, opts.cpu_upstream, opts.cpu_contender)
    procs.pin = not opts.no_pin and all(cpu in affinity for cpu in cpus)
    if not opts.no_pin and not procs.pin:
        log(
            f"warning: CPUs {opts.cpu_wrk}/{opts.cpu_upstream}/{opts.cpu_contender} not all in "
            f"affinity {sorted(affinity)}; not pinning"
        )
    if not opts.dry_run:
        still = ensure_tools(install=not opts.no_install)
        if still:
            log(f"still missing: {', '.join(still)} (the contenders that need them are skipped)")
    if shutil.which("wrk") is None and not opts.dry_run:
        log("wrk not found (Debian: apt-get install wrk)")
        return 2

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_exit)
    atexit.register(procs.stop_all)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix="corsbench-"))
    os.chmod(workdir, 0o755)  # nginx workers run as an unprivileged user when started as root
    results_dir = BENCH_DIR / "results"
    json_path = opts.json or results_dir / f"{opts.upstream}-{stamp}.json"
    md_path = opts.markdown or results_dir / f"{opts.upstream}-{stamp}.md"
    other = contextlib.ExitStack()
    try:
        against = None
        if opts.against:
            _label, root = other.enter_context(checkout(opts.against))
            against = (opts.against, root)
        upstream, contenders = build(opts, workdir, workdir / "big.bin", against)
        if opts.dry_run:
            for c in [upstream, *contenders]:
                cpu = opts.cpu_upstream if c is upstream else opts.cpu_contender
                command = shlex.join(procs.pin_argv(cpu) + c.argv)
                print(f"{c.name:24} :{c.port}{c.prefix}  {command}")
            return 0
        files = _write_files(opts, workdir)
        vers = versions()
        log("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
        pin_desc = (
            f"wrk CPU {opts.cpu_wrk}, upstream CPU {opts.cpu_upstream}, contender CPU "
            f"{opts.cpu_contender} (taskset -c)"
            if procs.pin
            else "not pinned"
        )
        if opts.nice:
            pin_desc += f", nice {opts.nice}"
        log(f"pinning: {pin_desc}; work dir {workdir}")

        for c in [upstream, *contenders]:
            if port_busy(c.port):
                raise SystemExit(
                    f"port {c.port} ({c.name}) already in use; stop whatever holds it "
                    f"or pass --base-port"
                )
        upstream.logfile = workdir / "upstream.log"
        upstream.proc = procs.start("upstream", upstream.argv, upstream.logfile, opts.cpu_upstream)
        wait_ready(upstream, opts.start_timeout)
        log(f"upstream ({opts.upstream}) ready on :{upstream.port}")
        ready = _start_and_check(opts, procs, contenders, workdir, files)

        rig = Rig(opts, procs, write_scripts(workdir, opts.origin), proc_tree(upstream.pid))
        runs = _rounds(rig, ready)
        slow = [] if opts.no_slow else _slow(opts, ready, files.huge_size)

        summary = report.summarize(runs, ready, opts.scenarios)
        md = [
            f"## CORS proxy benchmark — upstream: {opts.upstream}\n",
            f"command: `python3 run.py {shlex.join(argv)}`  ",
            f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}  ",
            f"pinning: {pin_desc}  ",
            "versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()) + "\n",
            *report.contenders_table(contenders),
            "",
            report.tables(summary, opts, ready),
            report.rules_table(runs),
        ]
        if against is not None:
            md.append(report.against_table(runs, f"cors-proxy@{against[0]}", opts.scenarios))
        if slow:
            md.append(report.slow_table(slow, opts))
        dead = [f"- {c.name}: {c.dead}" for c in contenders if c.dead]
        if dead:
            md.append("**not measured / died:**\n" + "\n".join(dead) + "\n")
        text = "\n".join(md)
        print(text)

        md_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        md_path.write_text(text)
        document: dict[str, Any] = {
            "argv": argv,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "config": opts.as_json(),
            "pinning": pin_desc,
            "versions": vers,
            "hello_body": HELLO_BODY,
            "big_bytes": files.big_size,
            "contenders": [describe(c) for c in contenders],
            "upstream": {"kind": opts.upstream, "argv": upstream.argv, "port": upstream.port},
            "runs": runs,
            "summary": summary,
            "slow": slow,
        }
        json_path.write_text(json.dumps(document, indent=1))
        log(f"wrote {md_path} and {json_path}")
        return _verdict(contenders, slow)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        procs.stop_all()
        other.close()
        if opts.keep_workdir:
            log(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _write_files(opts: Options, workdir: Path) -> Files:
    big = workdir / "big.bin"
    h = hashlib.sha256()
    with open(big, "wb") as f:
        for _ in range(opts.big_mib):
            block = os.urandom(1 << 20)
            h.update(block)
            f.write(block)
    os.chmod(big, 0o644)
    huge_size = opts.slow_mib << 20
    with open(workdir / "huge.bin", "wb") as f:
        f.truncate(huge_size)  # sparse: zeros that take no disk space
    os.chmod(workdir / "huge.bin", 0o644)
    return Files(big, opts.big_mib << 20, h.hexdigest(), huge_size)


def _start_and_check(
    opts: Options, procs: Procs, contenders: list[Contender], workdir: Path, files: Files
) -> list[Contender]:
    """Start each contender and check its answers; those that cannot run are marked dead."""
    ready: list[Contender] = []
    for c in contenders:
        why = available(c)
        if why:
            log(f"skip {c.name}: {why}")
            c.dead = "skipped: " + why
            continue
        c.logfile = workdir / f"{c.name}.log"
        c.proc = procs.start(c.name, c.argv, c.logfile, opts.cpu_contender, cwd=c.cwd)
        try:
            wait_ready(c, opts.start_timeout)
        except RuntimeError as e:
            log(f"skip {c.name}: {e}")
            c.dead = "did not start"
            procs.stop(c.proc)
            continue
        c.validation = validate(c, opts.origin, files.big_size, files.big_sha)
        c.idle_rss_kib = status_kib(proc_tree(c.pid), "VmRSS")
        v = c.validation
        log(
            f"{c.name:24} :{c.port}{c.prefix} pid {c.pid} idle RSS "
            f"{c.idle_rss_kib / 1024:.1f} MiB  "
            f"valid={'yes' if v.get('ok') else 'NO'} functional={v.get('functional_ok')} "
            f"cors={v.get('cors_ok')} {v.get('error', '')}"
        )
        ready.append(c)
    return ready


def _rounds(rig: Rig, ready: list[Contender]) -> list[Run]:
    """Every scenario for every contender, round after round; the order is rotated each
    round so that no contender is always first or last."""
    opts = rig.opts
    runs: list[Run] = []
    total = opts.rounds * len(opts.scenarios) * len(ready)
    eta = total * (opts.duration + opts.warmup + opts.settle + 0.5)  # without retries
    log(f"{total} measured runs, about {eta / 60:.1f} min")
    for rnd in range(opts.rounds):
        for sc in opts.scenarios:
            k = rnd % len(ready) if ready else 0
            for c in ready[k:] + ready[:k]:
                if not c.measured_in(sc):
                    continue
                assert c.proc is not None
                if c.proc.poll() is not None:
                    c.dead = f"exited with {c.proc.returncode} before round {rnd + 1} {sc}"
                    log(f"{c.name} died: {c.dead}\n{tail(c.logfile)}")
                    continue
                try:
                    if opts.warmup > 0:
                        warm_up(rig, c, sc)
                    attempts = _attempts(rig, c, sc, rnd)
                except RuntimeError as e:
                    log(f"{c.name} {sc} round {rnd + 1} failed: {e}")
                    continue
                r = min(attempts, key=lambda a: a["other_pct"])
                r["round"] = rnd + 1
                r["attempts"] = len(attempts)
                r["other_pct_attempts"] = [a["other_pct"] for a in attempts]
                runs.append(r)
                log(
                    f"r{rnd + 1} {sc:9} {c.name:24} {r['rps']:>9,.0f} req/s "
                    f"{r['mbps']:>8,.1f} MB/s p50 {r['p50_ms']:6.2f} p99 {r['p99_ms']:7.2f} ms  "
                    f"RSS {r['peak_rss_kib'] / 1024:6.1f} MiB  CPU {r['cpu_pct']:3.0f}%  "
                    f"wrk {r['wrk_cpu_pct']:3.0f}%  other {r['other_pct']:3.0f}%  "
                    f"err {r['errors']}+{r['non_2xx_3xx']}"
                )
                time.sleep(opts.settle)
    return runs


def _attempts(rig: Rig, c: Contender, sc: str, rnd: int) -> list[Run]:
    """One measurement, taken again (up to --retries) while other processes used more than
    --max-other % of a core during it; the caller keeps the quietest."""
    opts = rig.opts
    attempts: list[Run] = []
    for attempt in range(1 + opts.retries):
        if attempt:
            time.sleep(opts.settle)
        attempts.append(measure(rig, c, sc))
        if attempts[-1]["other_pct"] <= opts.max_other:
            break
        top = ", ".join(f"{n} {v:g}%" for n, v in attempts[-1]["other_top"])
        log(
            f"r{rnd + 1} {sc} {c.name}: other processes used "
            f"{attempts[-1]['other_pct']:.0f}% of a core (> {opts.max_other:g}%: {top})"
            + ("; retrying" if attempt < opts.retries else "; keeping the quietest")
        )
    return attempts


def _slow(opts: Options, ready: list[Contender], huge_size: int) -> list[dict[str, Any]]:
    slow = []
    for c in ready:
        if not c.measured_in("slow"):
            continue
        r = slow_download(opts, c, huge_size)
        slow.append(r)
        log(
            f"slow {c.name:24} {r['bytes'] / 2**20:,.0f} MiB in {r['seconds']:.1f} s, peak RSS "
            f"{r['peak_rss_mib']:.1f} MiB "
            f"{'' if r['bytes_ok'] else 'INCOMPLETE ' + r['error']}"
        )
    return slow


def _verdict(contenders: list[Contender], slow: list[dict[str, Any]]) -> int:
    """0 when every contender started and passed its check (and the slow download was
    complete); 1 otherwise. Timings never fail a run."""
    failed = [c.name for c in contenders if c.dead or not c.validation.get("ok")]
    failed += [f"{r['contender']} (slow download incomplete)" for r in slow if not r["bytes_ok"]]
    for c in contenders:
        outcome = "FAIL " + (c.dead or json.dumps(c.validation)) if c.name in failed else "ok"
        log(f"check {c.name}: {outcome}")
    if failed:
        log(f"FAILED: {', '.join(failed)}")
        return 1
    return 0
