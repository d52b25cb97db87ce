"""The shard core in-process, without PostgreSQL or Ray: CPU per reserve, GC settings,
and the cost of the wire format. The figures behind ADR 0017 and actors/inventory.py.

    python -m bench.shard_core              # all three
    python -m bench.shard_core core gc wire # any of them

core  ShardCore.apply_wire with a repository that writes nothing: a hot SKU, then 1,000
      SKUs, batches of 100; CPU microseconds per reserve (this thread's CPU time).
gc    A shard holding 100k SKUs and 10k holds applies 300k reserves: time in collections
      per reserve, batch CPU p50/p99/max and the longest collection, for CPython's default
      settings and for actors.inventory.settle_heap's (freeze after recovery, threshold).
wire  Pickling (cloudpickle, as Ray does) a batch of 100 reserves and their answers, as
      the typed dataclasses and as the wire tuples: microseconds per mutation both ways.

CPU time, not wall time, so the figures hold on a machine shared with other work.
"""

from __future__ import annotations

import asyncio
import gc
import pickle
import sys
import time
from collections.abc import Callable
from typing import Any

from matchday.inventory.commands import Outcome, ReservationView, Reserve
from matchday.inventory.records import BatchWrite
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.inventory.wire import RESERVE, WireMutation, outcome_to_wire, to_wire
from tests.fakes import FakeShardRepository, ManualClock


class NoWrites(FakeShardRepository):
    async def write_batch(self, batch: BatchWrite) -> None:
        self.writes += 1


def reserves(start: int, n: int, skus: int) -> list[WireMutation]:
    return [
        (RESERVE, f"req-{i}", f"S{(i * 7919) % skus:06d}", 1, f"cart-{i}", f"fan-{i}", 600.0)
        for i in range(start, start + n)
    ]


async def started(skus: int) -> ShardCore:
    repo = NoWrites()
    for i in range(skus):
        repo.add_sku(f"S{i:06d}", 10**9)
    core = ShardCore(0, Router(1), repo, clock=ManualClock(), dedupe_window_s=0.0)
    await core.start()
    return core


async def core_cpu() -> None:
    for skus in (1, 1000):
        core = await started(skus)
        batches = [reserves(b * 100, 100, skus) for b in range(2000)]
        await core.apply_wire(batches[0])
        t = time.thread_time()
        for batch in batches[1:]:
            await core.apply_wire(batch)
        us = (time.thread_time() - t) / (len(batches) - 1) / 100 * 1e6
        print(f"core: {skus:>5} SKU(s), batches of 100: {us:.2f} us CPU per reserve")


async def gc_settings(settle: Callable[[], None] | None) -> None:
    core = await started(100_000)
    await core.apply_wire(reserves(10**9, 10_000, 100_000))  # 10k holds, as recovered
    if settle is not None:
        settle()
    pauses: list[float] = []
    began = [0.0]

    def watch(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.thread_time()
        else:
            pauses.append(time.thread_time() - began[0])

    gc.callbacks.append(watch)
    times = []
    try:
        for b in range(3000):
            batch = reserves(b * 100, 100, 100_000)
            t = time.thread_time()
            await core.apply_wire(batch)
            times.append(time.thread_time() - t)
    finally:
        gc.callbacks.remove(watch)
        gc.unfreeze()
    times.sort()
    name = "default" if settle is None else "settle_heap"
    print(
        f"gc {name:>11}: {sum(pauses) / 300_000 * 1e6:.2f} us per reserve in {len(pauses)}"
        f" collections, longest {max(pauses, default=0) * 1e3:.1f} ms; batch CPU p50"
        f" {times[1500] * 1e3:.2f} ms, p99 {times[2970] * 1e3:.2f} ms,"
        f" max {times[-1] * 1e3:.1f} ms"
    )


def wire_cost() -> None:
    import ray.cloudpickle as cloudpickle  # as Ray pickles task arguments

    typed = [Reserve(f"rq-{i}", f"SKU-{i % 9}", 1, f"c-{i}", f"f-{i}", 60.0) for i in range(100)]
    answers = [
        Outcome(value=ReservationView(f"r0.1.{i:x}", f"SKU-{i % 9}", 1, "c", "f", 1.8e9, "held"))
        for i in range(100)
    ]
    for name, batch, outs in (
        ("dataclasses", typed, answers),
        ("wire tuples", [to_wire(m) for m in typed], [outcome_to_wire(o) for o in answers]),
    ):
        t = time.thread_time()
        for _ in range(300):
            pickle.loads(cloudpickle.dumps(batch, protocol=5))  # noqa: S301 - our own bytes
            pickle.loads(cloudpickle.dumps(outs, protocol=5))  # noqa: S301
        us = (time.thread_time() - t) / 300 / 100 * 1e6
        print(f"wire: {name}: {us:.2f} us per mutation and answer, pickled both ways")


def main(argv: list[str]) -> None:
    from actors.inventory import settle_heap

    wanted = set(argv) or {"core", "gc", "wire"}
    if "core" in wanted:
        asyncio.run(core_cpu())
    if "gc" in wanted:
        asyncio.run(gc_settings(None))
        asyncio.run(gc_settings(settle_heap))
    if "wire" in wanted:
        wire_cost()


if __name__ == "__main__":
    main(sys.argv[1:])
