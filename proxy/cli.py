"""Command line: ``cors-proxy [--config FILE] [flags]`` and ``cors-proxy check`` (thin I/O)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from proxy import __version__
from proxy.config.loader import load
from proxy.config.model import (
    ENV_CONFIG,
    Config,
    Overrides,
    describe,
    merge_overrides,
    overrides_from_env,
)
from proxy.errors import ConfigError

if TYPE_CHECKING:
    from proxy.server import ProxyServer

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cors-proxy",
        description="Local reverse proxy that adds CORS headers and explains upstream errors.",
        epilog="Subcommands: `cors-proxy check --config FILE` validates a config and exits;"
        " `cors-proxy export --to TARGET --config FILE` prints it for nginx, Caddy,"
        " flask-cors or Starlette; `cors-proxy learn --upstream URL` records the"
        " traffic and prints the minimal rules.",
    )
    p.add_argument("--config", metavar="FILE", help=f"YAML config file (env {ENV_CONFIG})")
    p.add_argument("--listen", metavar="HOST:PORT", help="listen address (default 127.0.0.1:8080)")
    p.add_argument("--upstream", metavar="URL", help="upstream URL (default http://127.0.0.1:5000)")
    p.add_argument(
        "--origin",
        action="append",
        metavar="ORIGIN",
        help="allowed origin; repeatable; replaces the file's rules with one permissive rule",
    )
    p.add_argument("--log-format", choices=("text", "json"), help="log lines as text or JSON")
    p.add_argument(
        "--explain",
        action="store_true",
        default=None,
        help="after each blocked exchange, print curl commands that reproduce it",
    )
    p.add_argument(
        "--candidate",
        metavar="FILE",
        help="report-only: log what the rules in FILE would block; the config's rules decide",
    )
    p.add_argument("--version", action="version", version=f"cors-proxy {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["export"]:
        return _export(args_list[1:])
    if args_list[:1] == ["learn"]:
        return _learn(args_list[1:])
    check = bool(args_list) and args_list[0] == "check"
    if check:
        args_list = args_list[1:]
    args = _parser().parse_args(args_list)
    path = args.config or os.environ.get(ENV_CONFIG) or None
    flags = Overrides(
        listen=args.listen,
        upstream=args.upstream,
        origins=tuple(args.origin) if args.origin else None,
        log_format=args.log_format,
        explain=args.explain,
        candidate=args.candidate,
    )
    overrides = merge_overrides(overrides_from_env(os.environ), flags)
    try:
        cfg = load(path, overrides)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"cors-proxy: config error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if check:
        return _check(cfg, path)
    return _serve(cfg, path, overrides)


def _check(cfg: Config, path: str | None) -> int:
    try:
        print(f"config OK: {path or '(no file: flags and environment)'}")
        for line in describe(cfg):
            print(f"  {line}")
        for warning in cfg.warnings:
            print(f"warning: {warning}")
        sys.stdout.flush()
    except BrokenPipeError:
        # `cors-proxy check ... | head -1`: the reader has what it wanted. Like other
        # command-line tools, stop writing quietly; the exit code is still the check's.
        # Python would report the pipe again when it flushes stdout at exit: point
        # stdout at /dev/null first (the recipe of Python's signal module docs).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


def _serve(cfg: Config, path: str | None, overrides: Overrides) -> int:
    from proxy.server import ProxyServer

    return _run(ProxyServer(cfg, config_path=path, overrides=overrides), cfg)


def _run(server: ProxyServer, cfg: Config) -> int:
    from proxy.server import run

    try:
        import uvloop  # a dependency wherever it exists (not on Windows)

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(run(server, sys.stdout))
    except OSError as exc:
        print(f"cors-proxy: cannot listen on {cfg.listen_url}: {exc.strerror}", file=sys.stderr)
        return 1


def _learn(argv: Sequence[str]) -> int:
    from proxy.export.learn import LEARNING_RULE, Learner
    from proxy.server import ProxyServer

    p = argparse.ArgumentParser(
        prog="cors-proxy learn",
        description="Run permissively, record the cross-origin traffic, and on Ctrl-C print"
        " (and with --write save) the minimal rules that allow exactly that traffic.",
    )
    p.add_argument("--upstream", metavar="URL", help="upstream URL (default http://127.0.0.1:5000)")
    p.add_argument("--listen", metavar="HOST:PORT", help="listen address (default 127.0.0.1:8080)")
    p.add_argument("--write", metavar="FILE", help="also save the learned rules to FILE")
    p.add_argument("--log-format", choices=("text", "json"), help="log lines as text or JSON")
    args = p.parse_args(list(argv))
    env = overrides_from_env(os.environ)
    flags = Overrides(listen=args.listen, upstream=args.upstream, log_format=args.log_format)
    try:
        cfg = load(None, merge_overrides(replace(env, origins=None), flags))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"cors-proxy: config error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    cfg = replace(cfg, rules=(LEARNING_RULE,), warnings=())
    learner = Learner()
    listen = f"{cfg.listen_host}:{cfg.listen_port}"

    def learned() -> str:
        return learner.yaml(listen=listen, upstream=cfg.upstream)

    server = ProxyServer(cfg, observe=learner.observe, learned=learned)
    print(
        "cors-proxy: learning: every origin is allowed, with credentials, and every preflight"
        " answered; Ctrl-C prints the rules (so far: GET /__cors-proxy__/learned)",
        file=sys.stderr,
        flush=True,
    )
    code = _run(server, cfg)
    if code != 0:
        return code
    text = learned()
    sys.stdout.write(text)
    sys.stdout.flush()
    if args.write:
        try:
            with open(args.write, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            print(f"cors-proxy: cannot write {args.write}: {exc.strerror}", file=sys.stderr)
            return 1
        print(f"cors-proxy: learned rules written to {args.write}", file=sys.stderr)
    return 0


def _export(argv: Sequence[str]) -> int:
    from proxy.export.model import TARGETS
    from proxy.export.render import render

    p = argparse.ArgumentParser(
        prog="cors-proxy export",
        description="Print the config's rules as production configuration for another server.",
    )
    p.add_argument("--to", required=True, choices=TARGETS, help="the target server or library")
    p.add_argument("--config", metavar="FILE", help=f"YAML config file (env {ENV_CONFIG})")
    args = p.parse_args(list(argv))
    path = args.config or os.environ.get(ENV_CONFIG) or None
    if path is None:
        print("cors-proxy: export needs --config FILE", file=sys.stderr)
        return EXIT_CONFIG
    try:
        cfg = load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"cors-proxy: config error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    out = render(args.to, cfg, path)
    sys.stdout.write(out.text)
    for d in out.deviations:
        print(f"cors-proxy: note: {d.rule}: {d.what}; {args.to}: {d.instead}", file=sys.stderr)
    return 0
