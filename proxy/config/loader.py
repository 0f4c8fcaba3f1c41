"""Loading a config: the one YAML reader, validation, flags > env > file > defaults.

Every problem is reported as ``<key path>: <value> <what is wrong>`` so ``cors-proxy
check`` and startup can print one line per problem and exit 2.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Final, TypeVar, cast, get_args

import yaml

from proxy.config.lint import lint
from proxy.config.model import (
    DEFAULT_METHODS,
    Config,
    HostHeader,
    InspectorConfig,
    LogFormat,
    Overrides,
    UpstreamCors,
    UpstreamTarget,
    UpstreamTls,
    zero_config_rule,
)
from proxy.errors import ConfigError
from proxy.policy.cors import CorsRule
from proxy.policy.fetch import is_token
from proxy.policy.origins import compile_glob, is_glob, normalize_origin

_Choice = TypeVar("_Choice", bound=str)

TOP_KEYS: Final = (
    "listen",
    "upstream",
    "host_header",
    "upstream_cors",
    "timeouts",
    "upstream_wait",
    "upstream_tls",
    "log_format",
    "explain",
    "limits",
    "inspector",
    "rules",
)
TIMEOUT_KEYS: Final = ("connect", "read")
TLS_KEYS: Final = ("verify", "ca_file")
LIMIT_KEYS: Final = ("max_body_bytes", "max_connections")
INSPECTOR_KEYS: Final = ("enabled", "allow", "keep", "hosts")
MAX_KEEP: Final = 100_000  # exchanges the inspector may keep (README: limits)
RULE_KEYS: Final = (
    "name",
    "paths",
    "origins",
    "origin_regex",
    "allow_methods",
    "allow_headers",
    "expose_headers",
    "allow_credentials",
    "max_age",
    "allow_private_network",
    "report_only",
)


# libyaml's safe loader when PyYAML has it: 0.1 s instead of 0.9 s for 1,000 rules.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_SAFE_LOADER)  # noqa: S506  (a safe loader, C or Python)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config file is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML{at}: {problem}") from None


def load(path: str | None, overrides: Overrides | None = None, *, empty_ok: bool = True) -> Config:
    """Read ``path`` (if any), apply ``overrides`` and validate; raise ``ConfigError``.

    ``empty_ok=False`` (a reload) refuses a file with no YAML document (0 bytes or only
    comments): an editor saving in steps leaves one for a moment, and applying it would
    turn CORS off. ``rules: []`` written out is a document, and is applied."""
    overrides = overrides or Overrides()
    raw: Any = read_yaml(path) if path else {}
    if raw is None:
        if path and not empty_ok:
            raise ConfigError(
                f"{path}: the file holds no YAML document (0 bytes or only comments; an"
                " editor saving in steps?), so the running config stays; write"
                " `rules: []` to mean no rules"
            )
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {_kind(raw)}")
    data = dict(raw)
    if overrides.listen is not None:
        data["listen"] = overrides.listen
    if overrides.upstream is not None:
        data["upstream"] = overrides.upstream
    if overrides.log_format is not None:
        data["log_format"] = overrides.log_format
    if overrides.explain is not None:
        data["explain"] = overrides.explain
    if overrides.origins is not None:
        data["rules"] = [zero_config_rule(overrides.origins)]
    cfg = _Validator(path).config(data)
    if overrides.origins is None:  # the zero-config rule is ours: nothing to lint
        cfg = replace(cfg, warnings=cfg.warnings + tuple(str(w) for w in lint(cfg.rules)))
    if overrides.candidate is not None:
        try:
            candidate = load(overrides.candidate)
        except ConfigError as exc:
            problems = [f"--candidate {overrides.candidate}: {p}" for p in exc.problems]
            raise ConfigError(problems) from None
        cfg = replace(cfg, candidate=candidate.rules, candidate_source=overrides.candidate)
    return cfg


class _Validator:
    def __init__(self, source: str | None) -> None:
        self.source = source
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def error(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def config(self, data: dict[str, Any]) -> Config:
        self.unknown_keys("", data, TOP_KEYS)
        cfg = Config(source=self.source)
        host, port = self.listen(data.get("listen", f"{cfg.listen_host}:{cfg.listen_port}"))
        upstream = self.upstream(data.get("upstream", cfg.upstream))
        host_header = self.choice(data, "host_header", HostHeader, cfg.host_header)
        upstream_cors = self.choice(data, "upstream_cors", UpstreamCors, cfg.upstream_cors)
        log_format = self.choice(data, "log_format", LogFormat, cfg.log_format)
        connect, read = cfg.connect_timeout, cfg.read_timeout
        timeouts = data.get("timeouts", {})
        if timeouts is None:
            timeouts = {}
        if not isinstance(timeouts, dict):
            self.error("timeouts", f"expected a mapping with connect/read, got {_kind(timeouts)}")
        else:
            self.unknown_keys("timeouts.", timeouts, TIMEOUT_KEYS)
            # 0 would fail every connect or read at once: refused, as a positive number
            # is what nginx users write (it used to become the default 5 s silently).
            connect = (
                self.seconds(
                    "timeouts.connect", timeouts.get("connect", connect), False, zero=False
                )
                or connect  # refused: the problem is reported and nothing starts
            )
            read = self.seconds("timeouts.read", timeouts.get("read", read), True, zero=False)
        explain = self.flag("explain", data.get("explain", cfg.explain))
        wait = self.seconds("upstream_wait", data.get("upstream_wait", cfg.upstream_wait), False)
        tls = self.upstream_tls(data.get("upstream_tls"), upstream)
        max_body, max_conns = cfg.max_body_bytes, cfg.max_connections
        limits = data.get("limits", {})
        if limits is None:
            limits = {}
        if not isinstance(limits, dict):
            self.error(
                "limits", f"expected a mapping with {', '.join(LIMIT_KEYS)}, got {_kind(limits)}"
            )
        else:
            self.unknown_keys("limits.", limits, LIMIT_KEYS)
            max_body = self.count("limits.max_body_bytes", limits.get("max_body_bytes"), 0)
            max_conns = self.count("limits.max_connections", limits.get("max_connections"), 1)
        inspector = self.inspector(data.get("inspector", {}))
        rules = self.rules(data.get("rules", []))
        if self.problems:
            raise ConfigError(self.problems)
        return replace(
            cfg,
            listen_host=host,
            listen_port=port,
            upstream=upstream,
            upstream_set="upstream" in data,
            host_header=host_header,
            upstream_cors=upstream_cors,
            connect_timeout=connect,
            read_timeout=read,
            upstream_wait=wait if wait is not None else cfg.upstream_wait,
            upstream_tls=tls,
            log_format=log_format,
            explain=explain,
            max_body_bytes=max_body,
            max_connections=max_conns,
            inspector=inspector,
            rules=rules,
            warnings=tuple(self.warnings),
        )

    def inspector(self, value: Any) -> InspectorConfig:
        default = InspectorConfig()
        if value is None:
            return default
        if isinstance(value, bool):  # `inspector: false` reads naturally: allow it
            return replace(default, enabled=value)
        if not isinstance(value, dict):
            self.error(
                "inspector",
                f"expected a mapping with {', '.join(INSPECTOR_KEYS)} or true/false, "
                f"got {_kind(value)}",
            )
            return default
        self.unknown_keys("inspector.", value, INSPECTOR_KEYS)
        enabled = self.flag("inspector.enabled", value.get("enabled", default.enabled))
        allow = []
        for i, item in enumerate(self.str_list("inspector.allow", value.get("allow", []))):
            try:
                allow.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                self.error(
                    f"inspector.allow[{i}]",
                    f"{item!r} is not an IP address or network (e.g. 192.168.1.0/24, ::1)",
                )
        keep = value.get("keep", default.keep)
        if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= MAX_KEEP:
            self.error("inspector.keep", f"expected a whole number 1 to {MAX_KEEP}, got {keep!r}")
            keep = default.keep
        hosts = []
        for i, item in enumerate(self.str_list("inspector.hosts", value.get("hosts", []))):
            if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", item):
                self.error(
                    f"inspector.hosts[{i}]",
                    f"{item!r} is not a host name (no scheme, no port: e.g. devbox.lan)",
                )
            else:
                hosts.append(item.lower())
        return InspectorConfig(enabled, tuple(allow), keep, tuple(hosts))

    # -- scalar helpers ------------------------------------------------------------------

    def unknown_keys(self, prefix: str, data: Mapping[Any, Any], known: Sequence[str]) -> None:
        for key in data:
            if key in known:
                continue
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
            self.error(f"{prefix}{key}", f"unknown key{hint}")

    def choice(self, data: Mapping[str, Any], key: str, kind: Any, default: _Choice) -> _Choice:
        """``data[key]``, one of the strings of the ``Literal`` type ``kind``."""
        options: tuple[str, ...] = get_args(kind)
        value = data.get(key, default)
        if value not in options:
            self.error(key, f"{value!r} is not one of {', '.join(options)}")
            return default
        return cast(_Choice, value)

    def seconds(self, key: str, value: Any, nullable: bool, *, zero: bool = True) -> float | None:
        if value is None and nullable:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or value < 0
            or (value == 0 and not zero)
        ):
            none = " or null for no limit" if nullable else ""
            least = ">= 0" if zero else "> 0"
            zeroed = "0 would fail every request at once; " if value == 0 else ""
            self.error(key, f"{zeroed}expected a number of seconds {least}{none}, got {value!r}")
            return None
        return float(value)

    def count(self, key: str, value: Any, least: int) -> int | None:
        """A whole number >= ``least``, or null for no limit."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            none = "or null for no limit"
            self.error(key, f"expected a whole number >= {least} {none}, got {value!r}")
            return None
        return value

    def listen(self, value: Any) -> tuple[str, int]:
        text = str(value).strip() if isinstance(value, str | int) else None
        m = re.fullmatch(r"(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]*)):(\d{1,5})", text or "")
        if text is not None and text.isdigit():
            m = re.fullmatch(r"()()(\d{1,5})", text)
        if m is None or int(m.group(3)) > 65535:
            self.error("listen", f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:8080; port 0 = any)")
            return "127.0.0.1", 8080
        return (m.group(1) or m.group(2) or "127.0.0.1"), int(m.group(3))

    def upstream(self, value: Any) -> str:
        if not isinstance(value, str):
            self.error("upstream", f"expected a URL such as http://127.0.0.1:5000, got {value!r}")
            return ""
        try:
            return UpstreamTarget.parse(value).url
        except ValueError as exc:
            self.error("upstream", f"{value!r} {exc}")
            return ""

    def upstream_tls(self, value: Any, upstream: str) -> UpstreamTls:
        if value is None:
            return UpstreamTls()
        if not isinstance(value, dict):
            self.error(
                "upstream_tls", f"expected a mapping with verify/ca_file, got {_kind(value)}"
            )
            return UpstreamTls()
        self.unknown_keys("upstream_tls.", value, TLS_KEYS)
        verify = self.flag("upstream_tls.verify", value.get("verify", True))
        ca_file = self.ca_file(value.get("ca_file"))
        tls = UpstreamTls(verify=verify, ca_file=ca_file)
        if not upstream.lower().startswith("https://") and tls != UpstreamTls():
            self.warnings.append(
                f"upstream_tls: has no effect: upstream {upstream} is not an https:// URL"
            )
        elif not verify:
            self.warnings.append(
                "upstream_tls.verify: false: the upstream's certificate is not checked, so "
                "anyone between the proxy and it can read and change the traffic; "
                "upstream_tls.ca_file trusts a self-signed certificate or a private CA instead"
                + (" (ca_file is not used while verify is false)" if ca_file else "")
            )
        return tls

    def ca_file(self, value: Any) -> str | None:
        """``upstream_tls.ca_file``: a readable PEM file of certificates, its path made
        absolute against the config file's folder (a relative path is written next to it)."""
        key = "upstream_tls.ca_file"
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.error(key, f"expected the path of a PEM file, got {value!r}")
            return None
        base = os.path.dirname(os.path.abspath(self.source)) if self.source else os.getcwd()
        path = os.path.join(base, os.path.expanduser(value.strip()))
        try:
            ssl.create_default_context(cafile=path)
        except FileNotFoundError:
            self.error(key, f"{value!r}: no such file ({path})")
        except ssl.SSLError as exc:
            self.error(
                key,
                f"{value!r} holds no PEM certificate ({exc.reason or exc}): it must be the "
                "CA's certificate (-----BEGIN CERTIFICATE-----), e.g. mkcert's rootCA.pem",
            )
        except OSError as exc:
            self.error(key, f"{value!r}: cannot read it ({exc.strerror or exc})")
        else:
            return os.path.normpath(path)
        return None

    def str_list(self, key: str, value: Any) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.error(key, f"expected a list of strings, got {_kind(value)}")
            return []
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.error(f"{key}[{i}]", f"expected a string, got {item!r}")
            else:
                out.append(item)
        return out

    def tokens(self, key: str, value: Any, what: str) -> list[str]:
        items = self.str_list(key, value)
        for i, item in enumerate(items):
            if item != "*" and not is_token(item):
                self.error(f"{key}[{i}]", f"{item!r} is not a valid HTTP {what} (an HTTP token)")
        return items

    def flag(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.error(key, f"expected true or false, got {value!r}")
            return False
        return value

    # -- rules ----------------------------------------------------------------------------

    def rules(self, value: Any) -> tuple[CorsRule, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error("rules", f"expected a list of rules, got {_kind(value)}")
            return ()
        if not value:
            self.warnings.append("rules: no rules; responses get no CORS headers")
        return tuple(r for i, item in enumerate(value) if (r := self.rule(i, item)) is not None)

    def rule(self, i: int, data: Any) -> CorsRule | None:
        at = f"rules[{i}]"
        if not isinstance(data, dict):
            self.error(at, f"expected a mapping, got {_kind(data)}")
            return None
        before = len(self.problems)
        self.unknown_keys(f"{at}.", data, RULE_KEYS)
        name = data.get("name", at)
        if not isinstance(name, str):
            self.error(f"{at}.name", f"expected a string, got {name!r}")
        paths = self.str_list(f"{at}.paths", data.get("paths", []))
        for j, p in enumerate(paths):
            if not p.startswith("/") and p != "*":
                self.error(f"{at}.paths[{j}]", f"{p!r} must start with '/' (a glob on the path)")
        origins = self.origins(at, data.get("origins", []))
        regex = data.get("origin_regex")
        if regex is not None:
            if not isinstance(regex, str):
                self.error(f"{at}.origin_regex", f"expected a string, got {regex!r}")
            else:
                try:
                    re.compile(regex)
                except re.error as exc:
                    self.error(f"{at}.origin_regex", f"{regex!r} is not a valid regex ({exc})")
        if not data.get("origins") and regex is None:
            self.error(f"{at}.origins", "a rule needs origins or origin_regex")
        methods = self.tokens(
            f"{at}.allow_methods", data.get("allow_methods", list(DEFAULT_METHODS)), "method"
        )
        headers = self.tokens(f"{at}.allow_headers", data.get("allow_headers", []), "header name")
        expose = self.tokens(f"{at}.expose_headers", data.get("expose_headers", []), "header name")
        credentials = self.flag(f"{at}.allow_credentials", data.get("allow_credentials", False))
        pna = self.flag(f"{at}.allow_private_network", data.get("allow_private_network", False))
        report_only = self.flag(f"{at}.report_only", data.get("report_only", False))
        max_age = data.get("max_age", 600)
        if max_age is not None and (
            isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0
        ):
            self.error(f"{at}.max_age", f"expected whole seconds >= 0 or null, got {max_age!r}")
        if credentials and "null" in origins:
            self.error(
                f"{at}.origins",
                "'null' cannot be combined with allow_credentials: true "
                "(any page can make a request with Origin: null)",
            )
        if len(self.problems) > before:
            return None
        return CorsRule(
            name=str(name),
            paths=tuple(paths),
            origins=tuple(origins),
            origin_regex=regex,
            allow_methods=tuple(methods),
            allow_headers=tuple(h.lower() for h in headers),
            expose_headers=tuple(expose),
            allow_credentials=credentials,
            max_age=max_age,
            allow_private_network=pna,
            report_only=report_only,
        )

    def origins(self, at: str, value: Any) -> list[str]:
        out: list[str] = []
        for j, raw in enumerate(self.str_list(f"{at}.origins", value)):
            key = f"{at}.origins[{j}]"
            try:
                norm = normalize_origin(raw)
                if is_glob(norm.value):
                    compile_glob(norm.value)
            except ValueError as exc:
                self.error(key, f"{raw!r} is not a valid origin: {exc}")
                continue
            if norm.changed:
                self.warnings.append(
                    f"{key}: {raw!r} normalized to {norm.value!r} "
                    "(browsers send lower-case, no default port, no trailing slash)"
                )
            if norm.value not in out:
                out.append(norm.value)
        return out


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]
