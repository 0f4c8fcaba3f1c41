"""Who is measured: the upstream, the baselines, local-cors-proxy, cors-proxy from this
checkout and its yardsticks, and contenders given on the command line; how each is started
and checked for correctness before anything is timed."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from typing import Any

from .options import Options
from .probe import http_digest, http_request, tail
from .procs import Popen
from .workload import (
    BENCH_DIR,
    HELLO_BODY,
    HOST,
    PREFLIGHT_METHOD,
    REPO_DIR,
    method_and_path,
    request_headers,
)


@dataclass
class Contender:
    name: str
    argv: list[str]
    port: int
    prefix: str = ""
    expects_cors: bool = True
    note: str = ""
    logfile: Path | None = None
    proc: Popen | None = None
    idle_rss_kib: int = 0
    validation: dict[str, Any] = field(default_factory=dict)
    dead: str = ""
    default: bool = True  # False: runs only when named in --only
    cwd: Path = BENCH_DIR  # cors-proxy runs from the checkout (python -m proxy)
    scenarios: list[str] | None = None  # None: every scenario (--contender-scenarios)

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    def measured_in(self, scenario: str) -> bool:
        return not self.dead and (self.scenarios is None or scenario in self.scenarios)


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
    startup_log = workdir / f"{name}.startup.log"
    return ["nginx", "-p", str(workdir), "-e", str(startup_log), "-c", str(conf)]


def fill(template: str, values: dict[str, str]) -> list[str]:
    """A --contender command: {placeholders} filled, then split like a shell would."""

    def sub(m: re.Match[str]) -> str:
        return values.get(m.group(1), m.group(0))

    return shlex.split(re.sub(r"\{(\w+)\}", sub, template))


def cors_proxy_argv(port: int, upstream_url: str, extra: list[str]) -> list[str]:
    """The project's proxy from this checkout (cwd REPO_DIR), with the real CLI's flags."""
    return [
        sys.executable, "-m", "proxy", "--listen", f"{HOST}:{port}", "--upstream", upstream_url,
        *extra,
    ]  # fmt: skip


def write_rules_config(path: Path, origin: str, n: int) -> Path:
    """A config of n rules (the README's format; JSON is YAML) in which the last one serves us.

    Rules pick by path first (the first rule whose paths match wins), then check the origin.
    Rules 1..n-1 cover /svc<i>/* with two origins each (an exact one and a one-label glob), so
    every request path is tested against all of them; the last rule covers every path, lists
    n origins with `origin` at the end, and allows what --origin allows."""
    rules: list[dict[str, Any]] = [
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


def build(
    opts: Options, workdir: Path, big_path: Path, against: tuple[str, Path] | None = None
) -> tuple[Contender, list[Contender]]:
    """The upstream, and the contenders this run measures (--only, --skip, --contender);
    ``against``: (label, directory) of another checkout, measured as cors-proxy@label."""
    bp = opts.base_port
    up_port = bp if opts.upstream == "nginx" else bp + 10
    upstream_url = f"http://{HOST}:{up_port}"

    def nginx_upstream(name: str, port: int) -> list[str]:
        conf = render(
            BENCH_DIR / "conf" / "nginx-upstream.conf.in",
            workdir / f"{name}.conf",
            {
                "WORKERS": str(opts.nginx_workers),
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
            "--port", str(port),
            "--big", str(big_path),
            "--huge", str(workdir / "huge.bin"),
            "--body", HELLO_BODY,
            "--quiet",
        ]  # fmt: skip

    def yardstick(name: str, port: int, shape: str, floor: str) -> Contender:
        script = BENCH_DIR / "contenders" / f"{name.replace('-', '_')}.py"
        return Contender(
            name,
            [sys.executable, str(script), str(port), upstream_url, opts.origin],
            port,
            cwd=REPO_DIR,
            scenarios=["small", "preflight"],
            note=f"yardstick: {shape} + cors-proxy's upstream client, fixed CORS headers, "
            f"no policy, no log ({floor})",
        )

    nginx = opts.upstream == "nginx"
    upstream = Contender(
        "upstream",
        nginx_upstream("upstream", up_port) if nginx else flask_upstream(up_port),
        up_port,
        expects_cors=False,
        note=f"{opts.upstream} upstream shared by all proxies",
    )
    cors_conf = render(
        BENCH_DIR / "conf" / "nginx-cors.conf.in",
        workdir / "nginx-cors.conf",
        {
            "WORKERS": str(opts.nginx_workers),
            "WORKDIR": str(workdir),
            "NAME": "nginx-cors",
            "PORT": str(bp + 1),
            "UPSTREAM_HOSTPORT": f"{HOST}:{up_port}",
            "PROXY_BUFFERING": opts.nginx_proxy_buffering,
        },
    )
    lcp_cli = BENCH_DIR / "node_modules" / "local-cors-proxy" / "bin" / "lcp.js"
    node = shutil.which("node") or "node"
    rules_conf = write_rules_config(workdir / "rules-1k.yaml", opts.origin, opts.rules)
    cs = [
        Contender(
            "direct",
            nginx_upstream("direct", bp + 2) if nginx else flask_upstream(bp + 2),
            bp + 2,
            expects_cors=False,
            note=f"{opts.upstream} alone (own instance, contender CPU), no proxy, no CORS",
        ),
        Contender(
            "nginx-cors",
            nginx_argv(workdir, "nginx-cors", cors_conf),
            bp + 1,
            note=f"nginx reverse proxy + CORS, proxy_buffering {opts.nginx_proxy_buffering}",
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
            cors_proxy_argv(bp + 4, upstream_url, ["--origin", opts.origin]),
            bp + 4,
            cwd=REPO_DIR,
            note="this checkout, one rule (--origin)",
        ),
        yardstick("aiohttp-floor", bp + 6, "aiohttp web.Server", "the design's floor"),
        yardstick(
            "httptools-floor",
            bp + 7,
            "the fast lane's shape (httptools protocol)",
            "the fast lane's floor",
        ),
        Contender(
            "cors-proxy-1k",
            cors_proxy_argv(bp + 5, upstream_url, ["--config", str(rules_conf)]),
            bp + 5,
            cwd=REPO_DIR,
            scenarios=["small", "preflight"],
            note=f"this checkout, --config with {opts.rules:,} rules; ours is the last one",
        ),
    ]
    extra = list(opts.contender)
    if os.environ.get("BENCH_PROJECT_CMD"):
        extra.append("project=" + os.environ["BENCH_PROJECT_CMD"])
    prefixes = dict(p.split("=", 1) for p in opts.prefix)
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
            "origin": opts.origin,
        }
        cs = [c for c in cs if c.name != name]
        cs.append(Contender(name, fill(template, values), port, note="user contender: " + template))
    for c in cs:
        if c.name in prefixes:
            c.prefix = prefixes[c.name].rstrip("/")
    for spec in opts.contender_scenarios:
        name, _, scs = spec.partition("=")
        for c in cs:
            if c.name == name:
                c.scenarios = [x for x in scs.split(",") if x]
    only = {s for s in opts.only.split(",") if s}
    skip = {s for s in opts.skip.split(",") if s}
    cs = [c for c in cs if (c.name in only or (not only and c.default)) and c.name not in skip]
    if against is not None:
        label, root = against
        cs.append(  # whatever --only says: it is what --against asked for
            Contender(
                f"cors-proxy@{label}",
                cors_proxy_argv(bp + 8, upstream_url, ["--origin", opts.origin]),
                bp + 8,
                cwd=root,
                note=f"cors-proxy from {root}, one rule (--origin); --against {opts.against}",
            )
        )
    return upstream, cs


def available(c: Contender) -> str:
    """Why ``c`` cannot run here (empty: it can)."""
    exe = c.argv[0]
    if shutil.which(exe) is None and not Path(exe).exists():
        return f"{exe} not found"
    if c.name == "lcp" and not Path(c.argv[3]).exists():
        return "local-cors-proxy not installed (run `npm ci` in the bench folder)"
    if c.argv[1:3] == ["-m", "proxy"] and not (c.cwd / "proxy" / "__main__.py").exists():
        return f"no proxy package in {c.cwd}"
    return ""


def wait_ready(c: Contender, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if c.proc is not None and c.proc.poll() is not None:
            raise RuntimeError(f"{c.name} exited with {c.proc.returncode}\n{tail(c.logfile)}")
        try:
            http_request(c.port, "GET", c.prefix + "/api/hello", {}, timeout=2)
            return
        except (OSError, HTTPException) as e:
            last = repr(e)
            time.sleep(0.1)
    raise RuntimeError(
        f"{c.name} not ready on port {c.port} after {timeout}s ({last})\n{tail(c.logfile)}"
    )


def validate(c: Contender, origin: str, big_size: int, big_sha: str) -> dict[str, Any]:
    """Functional check before timing anything; a failure is reported, not fatal."""
    res: dict[str, Any] = {}
    try:
        method, path = method_and_path("small")
        st, h, _raw, body = http_request(
            c.port, method, c.prefix + path, request_headers("small", origin)
        )
        res["small"] = {
            "status": st,
            "body_ok": body == HELLO_BODY.encode(),
            "acao": h.get("access-control-allow-origin"),
        }
        method, path = method_and_path("preflight")
        st, h, raw, _ = http_request(
            c.port, method, c.prefix + path, request_headers("preflight", origin)
        )
        res["preflight"] = {
            "status": st,
            "acao": h.get("access-control-allow-origin"),
            "acam": h.get("access-control-allow-methods"),
            "acah": h.get("access-control-allow-headers"),
            "acao_lines": sum(1 for k, _ in raw if k.lower() == "access-control-allow-origin"),
        }
        method, path = method_and_path("big")
        st, h, n, sha = http_digest(
            c.port, method, c.prefix + path, request_headers("big", origin), timeout=60
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
    cors_ok = all(res[k]["acao"] in (origin, "*") for k in ("small", "preflight", "big"))
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


def describe(c: Contender) -> dict[str, Any]:
    """The contender as the JSON report records it."""
    return {
        "name": c.name,
        "argv": c.argv,
        "port": c.port,
        "prefix": c.prefix,
        "note": c.note,
        "idle_rss_kib": c.idle_rss_kib,
        "validation": c.validation,
        "dead": c.dead,
    }
