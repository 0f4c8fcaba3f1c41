"""Command line: ``cors-proxy [--config FILE] [flags]`` and ``cors-proxy check`` (thin I/O)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from proxy import __version__
from proxy.config.loader import load
from proxy.config.model import (
    ENV_CONFIG,
    ENV_UPSTREAM,
    Config,
    Overrides,
    check_lines,
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
        usage="cors-proxy [options] [-- COMMAND [ARGS ...]]",
        description="Local reverse proxy that adds CORS headers and explains upstream errors.",
        epilog="After --, COMMAND is your dev server, run and stopped with the proxy"
        " (cors-proxy --origin http://localhost:5173 -- flask --app app run)."
        " Subcommands: `cors-proxy check --config FILE` validates a config and exits;"
        " `cors-proxy export --to TARGET --config FILE` prints it for nginx, Caddy,"
        " flask-cors or Starlette; `cors-proxy learn --upstream URL` records the"
        " traffic and prints the minimal rules; `cors-proxy demo` runs a bundled demo"
        " (pip install 'cors-dev-proxy[demo]').",
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
    command: list[str] = []
    if "--" in args_list:  # everything after it is the dev server's command line
        at = args_list.index("--")
        args_list, command = args_list[:at], args_list[at + 1 :]
        if not command:
            print("cors-proxy: nothing after --: give the dev server's command", file=sys.stderr)
            return EXIT_CONFIG
        if args_list[:1] in (["check"], ["export"], ["learn"], ["demo"]):
            print(f"cors-proxy: {args_list[0]} runs no command (nothing after --)", file=sys.stderr)
            return EXIT_CONFIG
    if args_list[:1] == ["export"]:
        return _export(args_list[1:])
    if args_list[:1] == ["learn"]:
        return _learn(args_list[1:])
    if args_list[:1] == ["demo"]:
        from proxy.demo.run import main as demo

        return demo(args_list[1:])
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
        return _check(cfg)
    return _serve(cfg, path, overrides, command)


def _check(cfg: Config) -> int:
    try:
        for line in check_lines(cfg):
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        # `cors-proxy check ... | head -1`: the reader has what it wanted. Like other
        # command-line tools, stop writing quietly; the exit code is still the check's.
        # Python would report the pipe again when it flushes stdout at exit: point
        # stdout at /dev/null first (the recipe of Python's signal module docs).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


def _serve(cfg: Config, path: str | None, overrides: Overrides, command: list[str]) -> int:
    from proxy.server import ProxyServer

    server = ProxyServer(cfg, config_path=path, overrides=overrides)
    return serve(server, command, upstream_from=_upstream_from(cfg, overrides))


def serve(server: ProxyServer, command: Sequence[str] = (), **options: Any) -> int:
    """Run ``server`` (and the dev server ``command``) until it stops; the exit code."""
    from proxy.server import run

    return run_loop(server, lambda: run(server, sys.stdout, command, **options))


def run_loop(server: ProxyServer, main: Callable[[], Awaitable[int]]) -> int:
    """``main()`` on an event loop (uvloop's where it exists); its exit code, or 1 when
    ``server`` cannot listen."""
    try:
        import uvloop  # a dependency wherever it exists (not on Windows)

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None

    async def call() -> int:
        return await main()

    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(call())
    except OSError as exc:
        url = server.generation.config.listen_url
        print(f"cors-proxy: cannot listen on {url}: {exc.strerror}", file=sys.stderr)
        return 1


def _upstream_from(cfg: Config, overrides: Overrides) -> str | None:
    """Where the upstream came from, or None when nothing chose it (a dev server after
    ``--`` then says where it listens)."""
    if overrides.upstream is not None:
        env = os.environ.get(ENV_UPSTREAM)
        return f"from {ENV_UPSTREAM}" if env and env == overrides.upstream else "from --upstream"
    if cfg.upstream_set:
        return f"from {cfg.source}"
    return None


def learning_server(cfg: Config, **options: Any) -> tuple[ProxyServer, Callable[[], str]]:
    """``cors-proxy learn``'s proxy: ``cfg`` with the one permissive rule, recording every
    allowed cross-origin exchange; and the rules so far, as YAML (its inspector page and
    ``/__cors-proxy__/learned`` show them too)."""
    from proxy.export.learn import LEARNING_RULE, Learner
    from proxy.server import ProxyServer

    cfg = replace(cfg, rules=(LEARNING_RULE,), warnings=())
    learner = Learner()
    listen = f"{cfg.listen_host}:{cfg.listen_port}"

    def learned() -> str:
        return learner.yaml(listen=listen, upstream=cfg.upstream)

    return ProxyServer(cfg, observe=learner.observe, learned=learned, **options), learned


def _learn(argv: Sequence[str]) -> int:
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
    server, learned = learning_server(cfg)
    print(
        "cors-proxy: learning: every origin is allowed, with credentials, and every preflight"
        " answered; Ctrl-C prints the rules (so far: on the inspector page, and at"
        " GET /__cors-proxy__/learned)",
        file=sys.stderr,
        flush=True,
    )
    code = serve(server)
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
