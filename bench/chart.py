#!/usr/bin/env python3
"""Bar chart (PNG) of a run.py result: throughput ratio to nginx-cors per scenario per contender.

    python bench/chart.py bench/results/<run>.json bench/results.png

Needs matplotlib (`pip install matplotlib`); it is not a dependency of the project or of
its tests, only of this script. The slow-client check is drawn as peak RSS in a second panel.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench/chart.py needs matplotlib: pip install matplotlib", file=sys.stderr)
        return 2
    data = json.loads(Path(argv[0]).read_text())
    summary = data["summary"]
    scenarios = [sc for sc in ("small", "preflight", "big") if sc in summary]
    names = [c["name"] for c in data["contenders"] if not c["dead"]]
    slow = data.get("slow", [])

    fig, axes = plt.subplots(
        1, 2 if slow else 1, figsize=(12 if slow else 8, 4.5), width_ratios=[3, 1] if slow else None
    )
    ax = axes[0] if slow else axes
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs, ys = [], []
        for j, sc in enumerate(scenarios):
            ratio = summary[sc]["contenders"].get(name, {}).get("ratio_nginx-cors")
            if ratio is not None:
                xs.append(j + (i - (len(names) - 1) / 2) * width)
                ys.append(ratio)
        bars = ax.bar(xs, ys, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(scenarios)))
    labels = {
        "small": "small GET (req/s)",
        "preflight": "preflight (req/s)",
        "big": "64 MiB (MB/s)",
    }
    ax.set_xticklabels([labels[sc] for sc in scenarios])
    ax.set_yscale("log")
    ax.set_ylabel("× nginx-cors (median of per-round ratios, log)")
    ax.set_title("Throughput relative to nginx with a CORS config, one core each")
    ax.legend(fontsize=8, loc="upper center", ncol=3)  # clear of the bars

    if slow:
        ax2 = axes[1]
        rs = [r for r in slow if r["contender"] in names]
        bars = ax2.bar(
            [r["contender"] for r in rs], [r["peak_rss_mib"] for r in rs], color="tab:gray"
        )
        ax2.bar_label(bars, fmt="%.0f", fontsize=7)
        limit = data["config"].get("slow_limit_mib", 60)
        ax2.axhline(limit, color="red", linewidth=0.8, linestyle="--")
        ax2.set_ylabel("peak RSS MiB")
        ax2.set_title(f"{data['config'].get('slow_mib', 1024)} MiB, slow client", fontsize=10)
        ax2.tick_params(axis="x", labelrotation=45, labelsize=8)
    fig.tight_layout()
    fig.savefig(argv[1], dpi=110)
    print(f"wrote {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
