"""One log line per exchange, as text or JSON (pure).

Values that came from the network are escaped before they reach the terminal
(flask-cors CVE-2024-1681: log injection through the request path).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def safe(text: str, limit: int = 300) -> str:
    """One printable line: control characters escaped, length capped."""
    out = _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return out if len(out) <= limit else out[: limit - 3] + "..."


@dataclass
class Record:
    method: str
    path: str
    status: int
    origin: str | None
    cors: str  # allowed | denied | preflight-ok | preflight-denied | no-origin | no-rule | ...
    rule: str | None
    ms: float
    reason: str = ""  # why CORS was denied, or what went wrong
    diagnosis: str = ""  # the upstream's real error, e.g. a Werkzeug one-liner
    note: str = ""  # what the browser would have done without the proxy, hints

    def text(self) -> str:
        line = (
            f"{safe(self.method, 20)} {safe(self.path)} {self.status} "
            f"origin={safe(self.origin, 120) if self.origin is not None else '-'} "
            f"cors={self.cors}"
            + (f"[{safe(self.rule, 60)}]" if self.rule else "")
            + f" {self.ms:.1f}ms"
        )
        for extra in (self.reason, self.diagnosis, self.note):
            if extra:
                line += f" | {safe(extra, 500)}"
        return line

    def json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v not in ("", None)}
        data["ms"] = round(self.ms, 2)
        return json.dumps(data, ensure_ascii=True)
