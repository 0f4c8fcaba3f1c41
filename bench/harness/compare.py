"""``bench/micro.py --against OTHER``: this checkout's in-process CPU per exchange against
another checkout's, measured now, on this interpreter, in interleaved rounds.

Each round runs each checkout's own ``bench/micro.py --rounds 1`` in a fresh process (so
each drives its own code, whatever its internal interfaces), alternating which goes first
(ABBA...), so a slow spell of the machine hits both alike. OTHER is a directory holding a
checkout, or a git revision of this repository, exported to a temporary directory.

The verdict per scenario (from 3 rounds on): *slower beyond noise* when every round's
ratio (this / other)
is above 1 and the ratio of the medians exceeds 1 + the noise, where the noise is the
larger relative spread (half the min-max range over the median) of the two sides; *faster
beyond noise* symmetrically; otherwise *within noise*. The yardstick (httptools-floor) is
the same protocol in both checkouts and shares only the upstream client with the product,
so its row shows what the noise alone looks like.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .log import log
from .workload import REPO_DIR

SCENARIOS = ("small", "preflight")
# (scenario, "cors-proxy" or "httptools-floor") -> µs per exchange, one value per round
Samples = dict[tuple[str, str], list[float]]


@dataclass
class Side:
    label: str
    root: Path
    samples: Samples = field(default_factory=dict)


@contextlib.contextmanager
def checkout(spec: str) -> Iterator[tuple[str, Path]]:
    """(label, directory) of a checkout: ``spec`` itself when it is a directory, else a git
    revision of this repository exported to a temporary directory (removed afterwards)."""
    path = Path(spec)
    if path.is_dir():
        if not (path / "bench" / "micro.py").exists():
            raise SystemExit(f"{spec}: no bench/micro.py there; is it a cors-proxy checkout?")
        yield str(path), path.resolve()
        return
    rev = _git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    if not rev:
        raise SystemExit(f"--against {spec}: neither a directory nor a git revision")
    with tempfile.TemporaryDirectory(prefix="cors-proxy-against-") as tmp:
        archive = subprocess.Popen(
            ["git", "-C", str(REPO_DIR), "archive", "--format=tar", rev],
            stdout=subprocess.PIPE,
        )
        subprocess.run(["tar", "-x", "-C", tmp], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise SystemExit(f"git archive {rev} failed")
        yield f"{spec} ({rev[:10]})", Path(tmp)


def _git(*args: str) -> str:
    r = subprocess.run(["git", "-C", str(REPO_DIR), *args], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def one_round(side: Side, exchanges: int) -> None:
    """One ``micro.py --rounds 1`` of that checkout; its table's medians are the samples."""
    r = subprocess.run(
        [sys.executable, "bench/micro.py", "--rounds", "1", "--exchanges", str(exchanges)],
        cwd=side.root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if r.returncode != 0:
        raise SystemExit(f"bench/micro.py in {side.label} failed:\n{r.stdout}{r.stderr}")
    found = parse_table(r.stdout)
    missing = {(sc, n) for sc in SCENARIOS for n in ("cors-proxy", "floor")} - set(found)
    if missing:
        raise SystemExit(f"bench/micro.py in {side.label}: no {sorted(missing)} in\n{r.stdout}")
    for key, value in found.items():
        side.samples.setdefault(key, []).append(value)


def parse_table(text: str) -> dict[tuple[str, str], float]:
    """The medians in micro.py's table: ``scenario cors-proxy min floor min ...``."""
    found: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        cells = line.split()
        if len(cells) >= 4 and cells[0] in SCENARIOS:
            found[(cells[0], "cors-proxy")] = float(cells[1])
            found[(cells[0], "floor")] = float(cells[3])
    return found


def spread(values: list[float]) -> float:
    """Half the min-max range, relative to the median."""
    return (max(values) - min(values)) / 2 / statistics.median(values)


MIN_ROUNDS = 3  # fewer rounds say nothing about the noise


def verdict(this: list[float], other: list[float], higher: str, lower: str) -> str:
    """Per-round values of this checkout and the other, in the same rounds: ``higher`` or
    ``lower`` (what a higher or lower value means) "beyond noise", or "within noise"."""
    ratios = [a / b for a, b in zip(this, other, strict=True)]
    if len(ratios) < MIN_ROUNDS:
        return f"too few rounds to tell (< {MIN_ROUNDS})"
    ratio = statistics.median(this) / statistics.median(other)
    noise = max(spread(this), spread(other))
    if min(ratios) > 1 and ratio > 1 + noise:
        return f"{higher} beyond noise"
    if max(ratios) < 1 and ratio < 1 - noise:
        return f"{lower} beyond noise"
    return "within noise"


def report(this: Side, other: Side, rounds: int, exchanges: int) -> str:
    lines = [
        f"CPU µs per exchange, in-process: {this.label} vs {other.label}",
        f"({rounds} interleaved rounds of {exchanges} exchanges each, medians; min–max)",
        f"{'scenario':<22} {'this':>6} {'min–max':>13} {'other':>6} {'min–max':>13}"
        f" {'this/other':>10} {'per round':>11}  verdict",
    ]
    for sc in SCENARIOS:
        for name, label in (("cors-proxy", sc), ("floor", f"{sc} (yardstick)")):
            a, b = this.samples[(sc, name)], other.samples[(sc, name)]
            ratios = [x / y for x, y in zip(a, b, strict=True)]
            lines.append(
                f"{label:<22} {statistics.median(a):>6.1f} {min(a):>6.1f}–{max(a):<6.1f}"
                f" {statistics.median(b):>6.1f} {min(b):>6.1f}–{max(b):<6.1f}"
                f" {statistics.median(a) / statistics.median(b):>10.3f}"
                f" {min(ratios):>5.2f}–{max(ratios):<5.2f}  {verdict(a, b, 'slower', 'faster')}"
            )
    return "\n".join(lines)


def compare(against: str, rounds: int, exchanges: int) -> str:
    with checkout(against) as (label, root):
        rev = _git("describe", "--always", "--dirty") or "this checkout"
        this, other = Side(f"this checkout ({rev})", REPO_DIR), Side(label, root)
        for i in range(rounds):
            order = (this, other) if i % 2 == 0 else (other, this)
            for side in order:
                log(f"round {i + 1}/{rounds}: {side.label}")
                one_round(side, exchanges)
        return report(this, other, rounds, exchanges)
