"""What the drop run (loadtests/drop.py) measured, queue on against queue off.

    python -m loadtests.drop_report JOURNAL_DIR STATS_CSV

- units bought by bots and by fans on each side, and the bots' share;
- with the queue, how the bots' units compare with theirs without it (target: a fifth at most);
- fairness: Spearman's rank correlation between the queued fans' arrival and admission;
- p99 of admitted fans' requests and of the open side's, and each side's error rate (Locust's
  ``_stats.csv``: requests named ``admitted: ...``, ``queue: ...`` and ``open: ...``); polls
  the ingress answered 429 by design, past a ticket's budget, apart (``throttled: ...``).
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def read_journal(folder: Path) -> list[dict[str, Any]]:
    entries = []
    for path in sorted(folder.glob("journal-*.jsonl")):
        entries += [json.loads(line) for line in path.read_text().splitlines() if line]
    return entries


def units(entries: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """side -> persona -> units bought."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"fan": 0, "bot": 0})
    for e in entries:
        out[e["side"]][e["persona"]] += int(e["units"])
    return {side: dict(v) for side, v in out.items()}


def ranks(values: list[float]) -> list[float]:
    """Ranks from 1, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx) ** 0.5
    vy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (vx * vy) if vx and vy else None


def fairness(entries: list[dict[str, Any]]) -> float | None:
    fans = [e for e in entries if e["side"] == "queued" and e["persona"] == "fan"
            and e["admitted"] is not None]  # fmt: skip
    return spearman([e["joined"] for e in fans], [e["admitted"] for e in fans])


def latency(stats_csv: Path) -> dict[str, dict[str, float]]:
    """prefix ('admitted', 'queue', 'open', 'throttled': polls the ingress refused by design)
    -> requests, failures, worst p99 (ms)."""
    out: dict[str, dict[str, float]] = {}
    with open(stats_csv) as f:
        for row in csv.DictReader(f):
            prefix = row["Name"].split(":")[0] if ":" in row["Name"] else None
            if prefix not in ("admitted", "queue", "open", "throttled"):
                continue
            s = out.setdefault(prefix, {"requests": 0, "failures": 0, "p99_ms": 0.0})
            s["requests"] += int(row["Request Count"])
            s["failures"] += int(row["Failure Count"])
            p99 = row.get("99%", "N/A")
            if p99 not in ("N/A", ""):
                s["p99_ms"] = max(s["p99_ms"], float(p99))
    for s in out.values():
        s["error_rate"] = s["failures"] / s["requests"] if s["requests"] else 0.0
    return out


def report(entries: list[dict[str, Any]], stats: dict[str, dict[str, float]]) -> dict[str, Any]:
    bought = units(entries)
    on, off = bought.get("queued", {"fan": 0, "bot": 0}), bought.get("open", {"fan": 0, "bot": 0})

    def share(side: dict[str, int]) -> float | None:
        total = side["fan"] + side["bot"]
        return side["bot"] / total if total else None

    return {
        "units": {"queue_on": on, "queue_off": off},
        "bot_share": {"queue_on": share(on), "queue_off": share(off)},
        "bot_units_on_vs_off": on["bot"] / off["bot"] if off["bot"] else None,
        "fairness_spearman": fairness(entries),
        "requests": stats,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    result = report(read_journal(Path(args[0])), latency(Path(args[1])))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
