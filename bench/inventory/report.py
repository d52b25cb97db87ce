"""What the inventory benchmark prints: ``Progress`` (timestamped progress lines), ``table``
and the number formats, and ``report`` with its ``notes``, the final summary of every figure
(hot SKU against the baselines, scaling, memory, recovery) and the caveats read off them."""

from __future__ import annotations

import time
from typing import Any

from bench.inventory.config import (
    SCALE_SKUS,
    TARGET_RECOVERY_S,
    TARGET_VS_REDIS,
    TARGET_VS_ROW_LOCK,
)
from bench.inventory.cpu import fmt_cores

# -- reporting -----------------------------------------------------------------------------


class Progress:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.start:6.1f}s] {msg}", flush=True)


def table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        out = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return (indent + "  ".join(out)).rstrip()

    return "\n".join([line(headers), indent + "  ".join("-" * w for w in widths), *map(line, rows)])


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def fmt_ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def fmt_mb(x: float) -> str:
    return f"{x / 2**20:,.1f} MiB"


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


# -- the final report ------------------------------------------------------------------------


def report(results: dict[str, Any]) -> str:
    out: list[str] = []
    hot = results.get("hot_sku", {})
    if hot:
        out.append("1. Hot SKU, durable acks: reserves of 1 unit on ONE SKU that never sells out")
        rows = []
        for c, res in hot.items():
            for key, label in (
                ("engine", "engine (Ray shards)"),
                ("row_lock", "PG row lock"),
                ("redis_lua", "Redis Lua"),
            ):
                r = res.get(key)
                if r is None:
                    continue
                errors = sum(r["errors_in_window"].values())
                rows.append(
                    [
                        c,
                        label,
                        fmt_rate(r["reserves_per_s"]),
                        fmt_ms(r["p50_ms"]),
                        fmt_ms(r["p99_ms"]),
                        fmt_ms(r["max_ms"]),
                        str(errors),
                    ]
                )
        out.append(
            table(["c", "system", "reserves/s", "p50 ms", "p99 ms", "max ms", "errors"], rows)
        )
        out.append("")
        rows = []
        for c, res in hot.items():
            ratios = res.get("ratios")
            if not ratios:
                continue
            a, b = ratios["engine_vs_row_lock"], ratios["engine_vs_redis_lua"]
            rows.append(
                [
                    c,
                    f"{a:.1f}x",
                    f">= {TARGET_VS_ROW_LOCK:g}x",
                    verdict(a >= TARGET_VS_ROW_LOCK),
                    f"{b:.2f}x",
                    f">= {TARGET_VS_REDIS:g}x",
                    verdict(b >= TARGET_VS_REDIS),
                ]
            )
        if rows:
            headers = ["c", "engine/row-lock", "target", "", "engine/Redis-Lua", "target", ""]
            out.extend([table(headers, rows), ""])
        rows = []
        for c, res in hot.items():
            for key, label in (
                ("engine", "engine"),
                ("row_lock", "row lock"),
                ("redis_lua", "Redis Lua"),
            ):
                r = res.get(key)
                if r is not None:
                    rows.append([c, label, fmt_cores(r["cores_used"])])
        out.append("  cores used during each window:")
        out.append(table(["c", "system", "CPU seconds per second, by process group"], rows))
        out.append("")
        for c, res in hot.items():
            e = res.get("engine")
            if e is None:
                continue
            d, b = e["durability"], e["batching"]
            out.append(
                f"  c={c} engine batching: {b['mutations_per_actor_call']} reserves per actor "
                f"call, {b['mutations_per_transaction']} per PostgreSQL transaction"
            )
            out.append(
                f"  c={c} durability: {d['acknowledged']:,} acknowledged reserves; PostgreSQL "
                f"reserved={d['postgres_reserved']:,}, held rows={d['held_reservation_rows']:,}, "
                f"journal rows={d['journal_rows']:,}: {'OK' if d['ok'] else 'FAILED'}"
            )
            checks = [
                f"{k.replace('_', ' ')} {'OK' if res[k]['check']['ok'] else 'FAILED'}"
                for k in ("row_lock", "redis_lua")
                if k in res
            ]
            if checks:
                out.append(f"  c={c} baseline counters equal their acks: {', '.join(checks)}")
        out.append("")
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


def notes(results: dict[str, Any]) -> list[str]:
    """Caveats read off the figures themselves: saturated cores, weaker acks, statistics."""
    found: list[str] = []
    phases: list[tuple[str, dict[str, Any]]] = []
    for c, res in results.get("hot_sku", {}).items():
        for key in ("engine", "row_lock", "redis_lua"):
            if key in res:
                phases.append((f"hot SKU c={c} {key.replace('_', ' ')}", res[key]))
    for r in results.get("scaling", []):
        phases.append((f"scaling {r['shards']} shard(s)", r))
    cpus = results.get("meta", {}).get("machine", {}).get("cpus") or 0
    for name, r in phases:
        cpu = r.get("cores_used", {})
        if cpu.get("driver", 0) >= 0.9:
            found.append(
                f"{name}: the load generator used {cpu['driver']:.2f} cores (one core is all a "
                "Python event loop gets), so this figure is bounded by the load generator"
            )
        if cpus and cpu.get("machine", 0) >= 0.95 * cpus:
            found.append(f"{name}: every core was busy ({cpu['machine']:.2f} of {cpus})")
        if cpu.get("other", 0) >= 0.2:
            found.append(
                f"{name}: processes outside the benchmark used {cpu['other']:.2f} cores "
                "meanwhile, so this figure is depressed by foreign load"
            )
        if cpu.get("steal", 0) >= 0.1:
            found.append(f"{name}: the hypervisor stole {cpu['steal']:.2f} cores meanwhile")
    for c, res in results.get("hot_sku", {}).items():
        r = res.get("row_lock")
        if r and r.get("p99_ms") and r.get("p50_ms") and r["p99_ms"] > 5 * r["p50_ms"]:
            found.append(
                f"hot SKU c={c} row lock: p99 is {r['p99_ms'] / r['p50_ms']:.0f}x p50 "
                "(waiters queue on one row lock; some wait out many commits)"
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
