"""What ``bench.http`` prints: a progress line per phase, then the summary over runs (medians
[min-max] of throughput, latency and the ratio to the baseline), the CPU per add per role
(net of idle and gross) beside each stack's idle burn, and issue 12's targets."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from bench.costs import (
    GROSS,
    NET,
    Spread,
    Summary,
    cost_table,
    ordered,
    spreads,
    summarize,
    summary_json,
)
from bench.targets import http_targets, lines
from matchday.ops.cpu_roles import AGGREGATES, NOT_ROLES, SERVER_TOTAL

STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


def fmt_cores(cores: Mapping[str, float]) -> str:
    shown = [k for k in ordered(cores) if cores[k] >= 0.005 or k == SERVER_TOTAL]
    shown += [k for k in NOT_ROLES if k in cores]
    return ", ".join(f"{k} {cores[k]:.2f}" for k in shown)


def line_of(name: str, p: Mapping[str, Any]) -> str:
    net, gross = p.get(NET, {}), p.get(GROSS, {})
    roles = [k for k in net if k not in AGGREGATES and net[k] >= 1.0]
    top = sorted(roles, key=lambda k: -net[k])[:5]
    parts = ", ".join(f"{k} {net[k]:,.0f}" for k in top)
    return (
        f"{name:<17} c={p['concurrency']:<4} {p['requests_per_s']:>8,.0f} req/s  "
        f"p50 {p['p50_ms']:>6.1f}  p99 {p['p99_ms']:>6.1f} ms  errors {p['errors_total']}  "
        f"durable {'ok' if p['durability']['ok'] else 'NO'}  server CPU "
        f"{net.get(SERVER_TOTAL, 0):,.0f} us/add net of idle ({gross.get(SERVER_TOTAL, 0):,.0f} "
        f"gross): {parts}"
    )


Idle = dict[str, dict[str, Spread]]  # system -> role -> cores idle, over runs


def finish(figures: dict[str, Any]) -> tuple[Summary, Idle]:
    """Add the summary over runs, the idle burn per system and the targets to ``figures``;
    return the first two for :func:`report`."""
    runs = [run["phases"] for run in figures["runs"] if run["phases"]]
    summary = summarize(runs, "baseline", "requests_per_s")
    idle_names = dict.fromkeys(n for run in figures["runs"] for n in run["idle"])
    idle = {n: spreads([r["idle"][n]["cores"] for r in figures["runs"] if n in r["idle"]])
            for n in idle_names}  # fmt: skip
    figures["summary"] = summary_json(summary)
    figures["idle_cores"] = {n: {k: v.json() for k, v in per.items()} for n, per in idle.items()}
    figures["targets"] = [t.json() for t in http_targets(summary)]
    return summary, idle


def report(figures: Mapping[str, Any], summary: Summary, idle: Idle) -> list[str]:
    n = len(figures["runs"])
    lines_out = [
        "",
        f"add-to-cart over HTTP: median of {n} run(s) [min-max]",
        "",
        "| connections | system | req/s | p50 ms | p99 ms | errors | vs baseline (same run) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c, per in summary.items():
        for system, s in per.items():
            errors = sum(
                run["phases"][c][system]["errors_total"]
                for run in figures["runs"]
                if system in run["phases"].get(c, {})
            )
            ratio = s["ratio"].fmt(2, "x") if s["ratio"] else "-"
            lines_out.append(
                f"| {c} | {system} | {s['rate'].fmt(0)} | {s['p50_ms'].fmt(1)} | "
                f"{s['p99_ms'].fmt(1)} | {errors} | {ratio} |"
            )
    for c, per in summary.items():
        cols = {f"{name} idle cores": idle[name] for name in per if name in idle}
        lines_out += [
            "",
            f"CPU microseconds per add (201 answer) by role, c={c}: net of each stack's idle "
            f"burn, and gross; last columns: the idle burn in cores, measured before the phases",
            cost_table(per, cols),
        ]
    lines_out += ["", *lines("issue 12 targets (medians of the runs):", http_targets(summary))]
    return lines_out


def checks_ok(figures: Mapping[str, Any]) -> bool:
    phases = [p for run in figures["runs"] for per in run["phases"].values() for p in per.values()]
    return bool(phases) and all(p["durability"]["ok"] for p in phases)
