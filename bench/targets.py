"""Issue 12's targets, judged on a run's summary (``bench.costs.summarize``) and printed as
one ``pass`` / ``short`` line each; never asserted in a test.

Each is a ratio against a baseline measured in the same run, or a CPU cost per operation,
taken as the median of the runs. CPU targets are judged net of the idle burn (the cost of the
operations themselves; the idle burn is reported apart, in cores) with the gross figure
printed beside it. The "server" CPU is every role but the load generator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.costs import GROSS, NET
from matchday.ops.cpu_roles import SERVER_TOTAL

# Hot SKU, durable acks: the engine against the PostgreSQL row lock (callers -> minimum ratio).
INVENTORY_RATIOS = {"256": 5.0, "64": 4.0}
INVENTORY_CPU_US = 30.0  # server CPU per durable reserve (shards + PostgreSQL + Ray + Redis)
# HTTP add-to-cart: matchday against FastAPI + uvicorn + one UPDATE (connections -> ratio).
HTTP_RATIOS = {"64": 1.5, "16": 1.0}
HTTP_CPU_US = 600.0  # CPU per add over all server processes


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    goal: str
    met: bool | None  # None: not measured in this run

    def line(self) -> str:
        mark = "-" if self.met is None else ("pass" if self.met else "short")
        return f"  {mark:<5}  {self.name}: {self.measured} (target {self.goal})"

    def json(self) -> dict[str, Any]:
        return {"name": self.name, "measured": self.measured, "goal": self.goal, "met": self.met}


Summary = Mapping[str, Mapping[str, Mapping[str, Any]]]


def _ratio(summary: Summary, c: str, system: str, base: str, goal: float, what: str) -> Target:
    name = f"{what}, c={c}: {system} / {base}"
    got = summary.get(c, {}).get(system, {}).get("ratio")
    if got is None:
        return Target(name, "not measured", f">= {goal:g}x", None)
    return Target(name, got.fmt(2, "x"), f">= {goal:g}x", got.median >= goal)


def _p99(summary: Summary, c: str, system: str, base: str, what: str) -> Target:
    name = f"{what}, c={c}: {system} p99 below {base}'s"
    per = summary.get(c, {})
    if system not in per or base not in per:
        return Target(name, "not measured", "lower", None)
    mine, theirs = per[system]["p99_ms"], per[base]["p99_ms"]
    measured = f"{mine.fmt(1)} ms vs {theirs.fmt(1)} ms"
    return Target(name, measured, "lower", mine.median < theirs.median)


def _cpu(summary: Summary, c: str, system: str, goal_us: float, what: str) -> Target:
    name = f"{what}, c={c}: {system} server CPU per op"
    got = summary.get(c, {}).get(system)
    if got is None or SERVER_TOTAL not in got[NET]:
        return Target(name, "not measured", f"<= {goal_us:g} us", None)
    net, gross = got[NET][SERVER_TOTAL], got[GROSS][SERVER_TOTAL]
    measured = f"{net.fmt(1)} us net of idle, {gross.fmt(1)} us gross"
    return Target(name, measured, f"<= {goal_us:g} us", net.median <= goal_us)


def inventory_targets(summary: Summary) -> list[Target]:
    what = "hot SKU durable"
    out = [_ratio(summary, c, "engine", "row lock", g, what) for c, g in INVENTORY_RATIOS.items()]
    for c in summary:
        out.append(_p99(summary, c, "engine", "row lock", what))
        out.append(_cpu(summary, c, "engine", INVENTORY_CPU_US, what))
    return out


def http_targets(summary: Summary) -> list[Target]:
    what = "add-to-cart"
    systems = dict.fromkeys(s for per in summary.values() for s in per if s != "baseline")
    out = []
    for system in systems:
        out += [_ratio(summary, c, system, "baseline", g, what) for c, g in HTTP_RATIOS.items()]
        for c in summary:
            out.append(_p99(summary, c, system, "baseline", what))
            out.append(_cpu(summary, c, system, HTTP_CPU_US, what))
    return out


def lines(title: str, targets: list[Target]) -> list[str]:
    return [title, *(t.line() for t in targets)]
