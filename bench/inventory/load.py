"""The inventory benchmark's load generator, the same for every system: ``drive`` runs C
worker coroutines looping on one reserve (an ``Op``) and counts what completes in the measured
window into a ``Load`` (rate, latency percentiles, errors, cores used and CPU per acknowledged
reserve by role, gross and net of the idle burn); ``engine_op`` and the SKU pickers build the
engine's op; ``poll`` waits for a condition."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.costs import phase_cost
from bench.inventory.config import TTL_S
from bench.inventory.cpu import CpuMeter
from bench.watch import Say, bounded
from matchday.inventory.commands import Reserve
from matchday.inventory.ids import tagged


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


# -- the load generator --------------------------------------------------------------------

# One reserve: None when acknowledged, else the name of the error.
Op = Callable[[int, int], Awaitable[str | None]]


@dataclass
class Load:
    concurrency: int
    seconds: float
    warmup: float
    ok: int = 0
    acked_total: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    errors_total: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)  # bench.costs.phase_cost of the window

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        ms = [x * 1000 for x in lat]
        return {
            "concurrency": self.concurrency,
            "seconds": self.seconds,
            "warmup_s": self.warmup,
            "reserves_per_s": round(self.rate, 1),
            "acked_in_window": self.ok,
            "acked_total": self.acked_total,
            "p50_ms": _round(percentile(ms, 0.50)),
            "p90_ms": _round(percentile(ms, 0.90)),
            "p99_ms": _round(percentile(ms, 0.99)),
            "p999_ms": _round(percentile(ms, 0.999)),
            "max_ms": _round(ms[-1] if ms else None),
            "mean_ms": _round(statistics.fmean(ms) if ms else None),
            "errors_in_window": dict(self.errors),
            "errors_total": dict(self.errors_total),
            **self.cost,
        }


def _round(x: float | None, n: int = 3) -> float | None:
    return None if x is None else round(x, n)


async def drive(
    op: Op, concurrency: int, warmup: float, seconds: float, meter: CpuMeter,
    idle: dict[str, float], say: Say, phase: str,
) -> Load:  # fmt: skip
    """C workers looping on ``op``; count what completes in [warm-up end, + seconds); CPU per
    acknowledged reserve net of ``idle`` (cores per role with no traffic)."""
    load = Load(concurrency, seconds, warmup)
    start = time.perf_counter()
    t0, t1 = start + warmup, start + warmup + seconds

    async def worker(w: int) -> None:
        seq = 0
        while True:
            a = time.perf_counter()
            if a >= t1:
                return
            try:
                err = await op(w, seq)
            except Exception as exc:
                err = type(exc).__name__
            seq += 1
            b = time.perf_counter()
            in_window = t0 <= b < t1
            if err is None:
                load.acked_total += 1
                if in_window:
                    load.ok += 1
                    load.latencies.append(b - a)
            else:
                load.errors_total[err] += 1
                if in_window:
                    load.errors[err] += 1

    async def watch() -> None:
        await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
        before = await asyncio.to_thread(meter.snapshot)
        await asyncio.sleep(max(0.0, t1 - time.perf_counter()))
        after = await asyncio.to_thread(meter.snapshot)
        load.cost = phase_cost(before, after, load.ok, idle)

    # After the window each worker awaits the reserve it has in flight: 120 s is far past
    # any acknowledgement (p99.9 stays under a second on the reference machine).
    async with bounded(
        say, phase, f"{concurrency} callers' reserves to be acknowledged",
        warmup + seconds + 120, lambda: f"{load.acked_total:,} acknowledged so far",
    ):  # fmt: skip
        await asyncio.gather(watch(), *(worker(w) for w in range(concurrency)))
    return load


def engine_op(clients: list[Any], pick: Pick, tag: str, concurrency: int) -> Op:
    """Reserves of 1 unit through InventoryClients; unique request, cart and customer ids."""
    rngs = [random.Random(f"{tag}-{w}") for w in range(concurrency)]

    async def op(w: int, seq: int) -> str | None:
        base = f"{tag}-{w}-{seq}"
        # Tagged as the shop's adds are, with their cart's creation time (ADR 0039): each
        # reserve here has a cart of its own, made now.
        rid = tagged(base, time.time())
        m = Reserve(rid, pick(w, rngs[w]), 1, f"cart-{base}", f"fan-{base}", TTL_S)
        outcome = await clients[w % len(clients)].submit(m)
        return None if outcome.error is None else type(outcome.error).__name__

    return op


Pick = Callable[[int, random.Random], str]  # (worker, its random generator) -> SKU


def one_sku(sku: str) -> Pick:
    return lambda w, rng: sku


def any_sku(skus: list[str]) -> Pick:
    return lambda w, rng: rng.choice(skus)


async def poll(pred: Callable[[], bool], limit_s: float, every_s: float) -> bool:
    """Wait until ``pred()`` holds or ``limit_s`` passes; whether it holds."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(every_s)
    return pred()
