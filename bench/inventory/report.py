"""What the inventory benchmark prints: ``Progress`` (timestamped progress lines), ``table``
and the number formats, and ``report`` with its ``notes``, the final summary of every figure
(hot SKU against the baselines, scaling, memory, recovery) and the caveats read off them."""

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
    spreads,
    summarize,
    summary_json,
    table,
)
from bench.inventory.config import SCALE_SKUS, TARGET_RECOVERY_S
from bench.inventory.cpu import fmt_cores
from bench.targets import inventory_targets, lines
from matchday.ops.cpu_roles import FOREIGN, LOAD_GENERATOR, SERVER_TOTAL

# -- reporting -----------------------------------------------------------------------------


class Progress:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.start:6.1f}s] {msg}", flush=True)


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def fmt_ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def fmt_mb(x: float) -> str:
    return f"{x / 2**20:,.1f} MiB"


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


# -- the final report ------------------------------------------------------------------------


SYSTEMS = (("engine", "engine"), ("row_lock", "row lock"), ("redis_lua", "Redis Lua"))


def summary_of(results: Mapping[str, Any]) -> tuple[Summary, dict[str, Spread]]:
    """The hot-SKU rounds' medians (``bench.costs.summarize``) and the idle burn's."""
    hot = results.get("hot_sku", {})
    runs = [
        {c: {label: res[key] for key, label in SYSTEMS if key in res} for c, res in run.items()}
        for run in hot.get("runs", [])
    ]
    idle = spreads([i["cores"] for i in hot.get("idle", [])])
    return summarize([r for r in runs if r], "row lock", "reserves_per_s"), idle


def finish(results: dict[str, Any]) -> None:
    """Add the summary over rounds, the idle burn and issue 12's targets to ``results``."""
    summary, idle = summary_of(results)
    results["summary"] = summary_json(summary)
    results["idle_cores"] = {k: v.json() for k, v in idle.items()}
    results["targets"] = [t.json() for t in inventory_targets(summary)]


def brief(r: Mapping[str, Any]) -> str:
    """A phase in one line: throughput, latency, server CPU per reserve net of idle."""
    net = r.get(NET, {}).get(SERVER_TOTAL, 0.0)
    gross = r.get(GROSS, {}).get(SERVER_TOTAL, 0.0)
    return (
        f"{fmt_rate(r['reserves_per_s'])} reserves/s, p50 {fmt_ms(r['p50_ms'])} ms, p99 "
        f"{fmt_ms(r['p99_ms'])} ms; server CPU {net:,.1f} us/reserve net of idle "
        f"({gross:,.1f} gross)"
    )


def report(results: dict[str, Any]) -> str:
    out: list[str] = []
    hot = results.get("hot_sku", {})
    if hot.get("runs"):
        out += hot_report(results)
    scaling = results.get("scaling", [])
    if scaling:
        c = scaling[0]["concurrency"]
        out.append(f"2. Scaling: reserves spread uniformly over {SCALE_SKUS:,} SKUs, c={c}")
        rows = [
            [
                str(r["shards"]),
                fmt_rate(r["reserves_per_s"]),
                f"{r.get('speedup_vs_1_shard', 0)}x",
                fmt_ms(r["p50_ms"]),
                fmt_ms(r["p99_ms"]),
                str(r["mutations_per_transaction"]),
                "OK" if r["durability"]["ok"] else "FAILED",
                f"{r.get(GROSS, {}).get(SERVER_TOTAL, 0):,.1f}",
                fmt_cores(r["cores_used"]),
            ]
            for r in scaling
        ]
        out.append(
            table(
                [
                    "shards",
                    "reserves/s",
                    "speedup",
                    "p50 ms",
                    "p99 ms",
                    "per tx",
                    "durable",
                    "server us/op (gross)",
                    "cores used",
                ],
                rows,
            )
        )
        out.append("")
    mem = results.get("memory", {})
    if "rss_per_100k_skus_bytes" in mem:
        out.append(f"3. Memory per 100k SKUs loaded (measured with {mem['skus']:,} SKUs)")
        rows = [
            [
                "same process, before/after adopt",
                fmt_mb(mem["rss_empty_bytes"]),
                fmt_mb(mem["rss_loaded_bytes"]),
                fmt_mb(mem["rss_per_100k_skus_bytes"]),
            ],
        ]
        if "rss_fresh_process_loaded_bytes" in mem:
            rows.append(
                [
                    "fresh process after recovery",
                    fmt_mb(mem["rss_empty_bytes"]),
                    fmt_mb(mem["rss_fresh_process_loaded_bytes"]),
                    fmt_mb(mem["rss_fresh_per_100k_skus_bytes"]),
                ]
            )
        out.append(table(["shard actor", "RSS empty", "RSS loaded", "per 100k SKUs"], rows))
        out.append("")
    rec = results.get("recovery", {})
    if "in_process" in rec or "on_ray" in rec:
        out.append(
            f"4. Recovery of a shard holding {rec['skus']:,} SKUs and "
            f"{rec.get('held_reservations', 0):,} held reservations (target < "
            f"{TARGET_RECOVERY_S:g} s)"
        )
        rows = []
        if "in_process" in rec:
            r = rec["in_process"]
            rows.append(
                [
                    "(i) in-process ShardCore.start()",
                    f"{r['min_s']:.2f}",
                    f"{r['median_s']:.2f}",
                    str(len(r["attempts_s"])),
                    verdict(r["median_s"] < TARGET_RECOVERY_S),
                ]
            )
        if "on_ray" in rec:
            r = rec["on_ray"]
            rows.append(
                [
                    "(ii) ray.kill -> reserve succeeds",
                    f"{r['min_s']:.2f}",
                    f"{r['median_s']:.2f}",
                    str(len(r["attempts"])),
                    verdict(r["median_s"] < TARGET_RECOVERY_S),
                ]
            )
        out.append(table(["way", "min s", "median s", "runs", "target"], rows))
        out.append("")
    out.extend(notes(results))
    return "\n".join(out)


def hot_report(results: Mapping[str, Any]) -> list[str]:
    hot = results["hot_sku"]
    summary, idle = summary_of(results)
    n = len(hot["runs"])
    out = [f"1. Hot SKU, durable acks: reserves of 1 unit on ONE SKU that never sells out ({n} "
           f"round(s), each on a fresh engine)"]  # fmt: skip
    rows = []
    for r, run in enumerate(hot["runs"]):
        for c, res in run.items():
            for key, label in SYSTEMS:
                if (x := res.get(key)) is not None:
                    errors = sum(x["errors_in_window"].values())
                    rows.append([c, str(r + 1), label, fmt_rate(x["reserves_per_s"]),
                                 fmt_ms(x["p50_ms"]), fmt_ms(x["p99_ms"]), fmt_ms(x["max_ms"]),
                                 str(errors)])  # fmt: skip
    headers = ["c", "run", "system", "reserves/s", "p50 ms", "p99 ms", "max ms", "errors"]
    out += [table(headers, rows), ""]
    rows = []
    for c, per in summary.items():
        for label, s in per.items():
            ratio = s["ratio"].fmt(2, "x") if s["ratio"] and label != "row lock" else "-"
            rows.append([c, label, s["rate"].fmt(0), s["p50_ms"].fmt(2), s["p99_ms"].fmt(2),
                         ratio])  # fmt: skip
    headers = ["c", "system", "reserves/s", "p50 ms", "p99 ms", "vs row lock"]
    out += [f"  median of {n} round(s) [min-max]; a ratio is the median of the rounds' own", ""]
    out += [table(headers, rows), ""]
    for c, per in summary.items():
        e, redis = per.get("engine"), per.get("Redis Lua")
        if e is None or e["ratio"] is None:
            continue
        ok = redis is not None and redis["rate"].median > 0
        vs_redis = f"{e['rate'].median / redis['rate'].median:.2f}x" if ok else "-"
        out.append(
            f"  c={c}: engine/row-lock {e['ratio'].fmt(2, 'x')}, engine/Redis-Lua {vs_redis}"
        )
    out.append("")
    for c, per in summary.items():
        out.append(
            f"  CPU microseconds per acknowledged reserve by role, c={c}: net of the idle burn "
            f"and gross; last column: the idle burn (cores) with the engine up, before the phases"
        )
        out += [cost_table(per, {"idle cores": idle}), ""]
    out += [*lines("  issue 12 targets (medians of the rounds):", inventory_targets(summary)), ""]
    for r, run in enumerate(hot["runs"]):
        for c, res in run.items():
            out += durability_lines(f"run {r + 1} c={c}", res)
    return [*out, ""]


def durability_lines(tag: str, res: Mapping[str, Any]) -> list[str]:
    out = []
    if (e := res.get("engine")) is not None:
        d, b = e["durability"], e["batching"]
        out.append(
            f"  {tag} engine batching: {b['mutations_per_actor_call']} reserves per actor "
            f"call, {b['mutations_per_transaction']} per PostgreSQL transaction"
        )
        out.append(
            f"  {tag} durability: {d['acknowledged']:,} acknowledged reserves; PostgreSQL "
            f"reserved={d['postgres_reserved']:,}, held rows={d['held_reservation_rows']:,}, "
            f"journal rows={d['journal_rows']:,}: {'OK' if d['ok'] else 'FAILED'}"
        )
    checks = [
        f"{k.replace('_', ' ')} {'OK' if res[k]['check']['ok'] else 'FAILED'}"
        for k in ("row_lock", "redis_lua")
        if k in res
    ]
    if checks:
        out.append(f"  {tag} baseline counters equal their acks: {', '.join(checks)}")
    return out


def notes(results: dict[str, Any]) -> list[str]:
    """Caveats read off the figures themselves: saturated cores, weaker acks, statistics."""
    found: list[str] = []
    phases: list[tuple[str, dict[str, Any]]] = []
    hot_runs = list(enumerate(results.get("hot_sku", {}).get("runs", []), 1))
    for n, run in hot_runs:
        for c, res in run.items():
            for key, label in SYSTEMS:
                if key in res:
                    phases.append((f"hot SKU run {n} c={c} {label}", res[key]))
    for r in results.get("scaling", []):
        phases.append((f"scaling {r['shards']} shard(s)", r))
    cpus = results.get("meta", {}).get("machine", {}).get("cpus") or 0
    for name, r in phases:
        cpu = r.get("cores_used", {})
        if cpu.get(LOAD_GENERATOR, 0) >= 0.9:
            found.append(
                f"{name}: the load generator used {cpu[LOAD_GENERATOR]:.2f} cores (one core is "
                "all a Python event loop gets), so this figure is bounded by the load generator"
            )
        if cpus and cpu.get("machine", 0) >= 0.95 * cpus:
            found.append(f"{name}: every core was busy ({cpu['machine']:.2f} of {cpus})")
        if cpu.get(FOREIGN, 0) >= 0.2:
            found.append(
                f"{name}: processes outside the benchmark used {cpu[FOREIGN]:.2f} cores "
                "meanwhile, so its throughput is depressed by foreign load (CPU per reserve "
                "much less so)"
            )
        if cpu.get("steal", 0) >= 0.1:
            found.append(f"{name}: the hypervisor stole {cpu['steal']:.2f} cores meanwhile")
    for n, run in hot_runs:
        for c, res in run.items():
            r = res.get("row_lock")
            if r and r.get("p99_ms") and r.get("p50_ms") and r["p99_ms"] > 5 * r["p50_ms"]:
                found.append(
                    f"hot SKU run {n} c={c} row lock: p99 is {r['p99_ms'] / r['p50_ms']:.0f}x "
                    "p50 (waiters queue on one row lock; some wait out many commits)"
                )
    meta = results.get("meta", {})
    if meta.get("redis", {}).get("appendfsync") != "always":
        found.append(
            "Redis acks are not durable one by one: appendfsync="
            f"{meta.get('redis', {}).get('appendfsync')} (up to a second of acks can be lost)"
        )
    if meta:
        found.append(
            "PostgreSQL planner statistics were "
            + (
                "refreshed (ANALYZE) before each engine phase"
                if meta.get("config", {}).get("analyze")
                else "NOT refreshed (--no-analyze): journal lookups may scan the whole journal"
            )
        )
    return ["notes:", *(f"  - {n}" for n in found), ""] if found else []
