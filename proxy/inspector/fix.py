"""The one-line YAML fix for a blocked exchange (pure).

The policy words its fixes for people (``add "http://127.0.0.1:5173" to
rules[0].origins``); the page also offers the line to paste over the key in the config
file, built from the running config: ``origins: ["http://localhost:3000",
"http://127.0.0.1:5173"]``. Values are JSON strings, which YAML reads as they are.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass

from proxy.config.model import Config
from proxy.policy.cors import CorsRule

_ADD = re.compile(
    r"add (?P<items>.+) to rules\[(?P<index>\d+)\]\.(?P<key>origins|allow_headers|allow_methods)"
    r"(?: \(.*\))?$"
)
_SET = re.compile(r"set rules\[(?P<index>\d+)\]\.(?P<key>allow_private_network): true$")
_NEW_RULE = re.compile(r"add a rule whose paths cover (?P<path>'/.*')$")


@dataclass(frozen=True)
class YamlFix:
    where: str  # which part of the file: "rules[0] (frontend)", or "rules"
    key: str  # the key whose line to replace ("origins"), or "rules" for a new item
    line: str  # the line to paste, without indentation
    applied: bool = False  # the running config has it already (a reload since)

    def as_dict(self) -> dict[str, object]:
        return {"where": self.where, "key": self.key, "line": self.line, "applied": self.applied}


def yaml_fix(fix: str, config: Config, origin: str | None = None) -> YamlFix | None:
    """The line for ``fix`` (a policy's fix text) in ``config``; None when the fix is
    not a config change (or the rules come from ``--origin``, with no file to edit)."""
    if config.source is None:
        return None
    m = _ADD.fullmatch(fix)
    if m:
        index, rule = _rule(config, m)
        if rule is None:
            return None
        key = m["key"]
        have: tuple[str, ...] = getattr(rule, key)
        if key == "origins":
            new = [json.loads(m["items"])] if m["items"].startswith('"') else []
        else:
            new = [item.strip() for item in m["items"].split(",") if item.strip()]
        if not new or ("null" in new and rule.allow_credentials):  # a config error
            return None
        if key == "allow_headers":
            missing = [n for n in new if n.lower() not in have]
        else:
            missing = [n for n in new if n not in have]
        values = [*have, *missing]
        return YamlFix(
            f"rules[{index}] ({rule.name})",
            key,
            f"{key}: [{', '.join(json.dumps(v) for v in values)}]",
            applied=not missing,
        )
    m = _SET.fullmatch(fix)
    if m:
        index, rule = _rule(config, m)
        if rule is None:
            return None
        return YamlFix(
            f"rules[{index}] ({rule.name})",
            m["key"],
            f"{m['key']}: true",
            applied=rule.allow_private_network,
        )
    m = _NEW_RULE.fullmatch(fix)
    if m and origin is not None and origin != "null" and re.fullmatch(r"https?://[^\s/]+", origin):
        path = ast.literal_eval(m["path"])  # the policy quotes it with repr()
        if not isinstance(path, str) or len(m["path"]) >= 200:  # cut by the policy: no fix
            return None
        paths = json.dumps(path)
        return YamlFix("rules", "rules", f"- {{paths: [{paths}], origins: [{json.dumps(origin)}]}}")
    return None


def _rule(config: Config, m: re.Match[str]) -> tuple[int, CorsRule | None]:
    """The rule a fix names (``rules[N]``), if the running config has it."""
    index = int(m["index"])
    return index, config.rules[index] if index < len(config.rules) else None
