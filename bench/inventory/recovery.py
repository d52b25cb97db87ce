"""Phases 3 and 4 of the inventory benchmark: ``MemoryAndRecovery.memory_and_recovery``
measures a shard actor's RSS per 100k SKUs and how long a shard holding them (and N/10 held
reservations) takes to recover, in-process (``ShardCore.start``) and on Ray (``kill_and_probe``:
kill the actor, probe until a reserve succeeds again)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psutil

from bench.inventory.config import TARGET_RECOVERY_S, TTL_S
from bench.inventory.harness import BenchBase, _alive
from bench.inventory.load import poll
from bench.inventory.report import fmt_mb
from bench.watch import Stalled, bounded
from matchday.inventory.commands import Reserve
from matchday.inventory.records import SkuRow
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.storage.db import make_pool
from matchday.storage.inventory_repo import InventoryRepository


def chunks(items: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class MemoryAndRecovery(BenchBase):
    # -- 3 and 4. memory and recovery ------------------------------------------------------

    async def memory_and_recovery(self) -> None:
        from actors.client import connect_client

        assert self.repo is not None and self.pool is not None
        cfg = self.cfg
        n = cfg.memory_skus
        s = self.settings("mem", shards=1, dedicated=0)
        router = Router(1, 0)
        like = f"{self.prefix}-M-%"
        names = [f"{self.prefix}-M-{i:06d}" for i in range(n)]
        memory: dict[str, Any] = {"skus": n}
        recovery: dict[str, Any] = {"skus": n, "target_s": TARGET_RECOVERY_S}
        self.results["memory"] = memory
        self.results["recovery"] = recovery
        handles = await self.start(s)
        h = handles[0]
        try:
            await asyncio.sleep(1.0)  # let the fresh worker settle
            st0 = await h.stats.remote()
            pid = st0["pid"]
            rss_empty = psutil.Process(pid).memory_info().rss
            self.say(
                f"memory: shard pid {pid} holds {st0['skus']} SKUs, RSS {fmt_mb(rss_empty)}; "
                f"creating and adopting {n:,} SKUs ..."
            )
            t = time.perf_counter()
            for chunk in chunks(names, 10_000):
                await self.repo.create_skus([SkuRow(x, 1_000, 0, 0) for x in chunk], router)
            created_s = time.perf_counter() - t
            t = time.perf_counter()
            adopted = 0
            async with bounded(
                self.say, "memory", f"the shard to adopt {n:,} SKUs", 180,
                lambda: f"{adopted:,} adopted", every_s=10,
            ):  # fmt: skip
                for chunk in chunks(names, 10_000):
                    await h.adopt.remote(chunk)
                    adopted += len(chunk)
            adopt_s = time.perf_counter() - t
            await self.analyze()
            await asyncio.sleep(0.5)
            st1 = await h.stats.remote()
            assert st1["pid"] == pid, "the shard restarted while adopting"
            rss_full = psutil.Process(pid).memory_info().rss
            loaded = st1["skus"] - st0["skus"]
            per_100k = (rss_full - rss_empty) * 100_000 / max(loaded, 1)
            memory.update(
                {
                    "shard_pid": pid,
                    "skus_before": st0["skus"],
                    "skus_after": st1["skus"],
                    "rss_empty_bytes": rss_empty,
                    "rss_loaded_bytes": rss_full,
                    "rss_per_100k_skus_bytes": round(per_100k),
                    "create_skus_s": round(created_s, 2),
                    "adopt_s": round(adopt_s, 2),
                }
            )
            self.say(
                f"  RSS {fmt_mb(rss_empty)} -> {fmt_mb(rss_full)} for {loaded:,} SKUs: "
                f"{fmt_mb(per_100k)} per 100k SKUs"
            )

            # ~N/10 held reservations, spread over the SKUs
            client = connect_client(s, handles)
            k = cfg.held_reservations
            step = max(1, n // k)
            targets = names[::step][:k]
            recovery["held_reservations"] = await self.hold(client, targets)

            # (ii) on Ray: kill, time until a reserve succeeds again
            ray_times: list[float] = []
            ray_runs: list[dict[str, Any]] = []
            for attempt in range(cfg.recovery_attempts):
                before = await h.stats.remote()
                dt, probes, errors = await self.kill_and_probe(h, client, names, attempt)
                st = await h.stats.remote()
                ray_times.append(dt)
                ray_runs.append(
                    {
                        "seconds": round(dt, 3),
                        "old_pid": before["pid"],
                        "new_pid": st["pid"],
                        "epoch": st["epoch"],
                        "skus": st["skus"],
                        "held_reservations": st["held_reservations"],
                        "probes": probes,
                        "probe_errors": errors,
                    }
                )
                self.say(
                    f"  on Ray, attempt {attempt + 1}: reserve succeeds again after {dt:.2f} s "
                    f"(pid {before['pid']} -> {st['pid']}, {st['skus']:,} SKUs and "
                    f"{st['held_reservations']:,} held reservations recovered)"
                )
            await asyncio.sleep(1.0)
            st = await h.stats.remote()
            rss_fresh_full = psutil.Process(st["pid"]).memory_info().rss
            memory["rss_fresh_process_loaded_bytes"] = rss_fresh_full
            memory["rss_fresh_per_100k_skus_bytes"] = round(
                (rss_fresh_full - rss_empty) * 100_000 / max(st["skus"] - st0["skus"], 1)
            )
            recovery["on_ray"] = {
                "attempts": ray_runs,
                "min_s": round(min(ray_times), 3),
                "median_s": round(statistics.median(ray_times), 3),
                "max_s": round(max(ray_times), 3),
            }
        finally:
            await self.stop(s)

        # (i) in-process, against the same rows, with the actor gone
        pool = make_pool(self.base.database_url, min_size=2, max_size=2, name="bench-recovery")
        await pool.open(wait=True)
        times: list[float] = []
        try:
            for attempt in range(cfg.recovery_attempts):
                core = ShardCore(0, Router(1), InventoryRepository(pool))
                t = time.perf_counter()
                async with bounded(self.say, "recovery in-process", "ShardCore.start()", 120):
                    await core.start()
                dt = time.perf_counter() - t
                times.append(dt)
                st = core.stats()
                self.say(
                    f"  in-process, attempt {attempt + 1}: ShardCore.start() {dt:.2f} s "
                    f"({st['skus']:,} SKUs, {st['held_reservations']:,} held reservations)"
                )
                loaded_now = {"skus": st["skus"], "held": st["held_reservations"]}
                recovery.setdefault("in_process_loaded", loaded_now)
                del core
        finally:
            await pool.close()
        recovery["in_process"] = {
            "attempts_s": [round(x, 3) for x in times],
            "min_s": round(min(times), 3),
            "median_s": round(statistics.median(times), 3),
        }
        await self.retire(like)

    async def hold(self, client: Any, targets: list[str]) -> int:
        """One reserve on each SKU of ``targets``, 2,000 at a time; the acknowledged count.

        Issue 12: this wait once stalled for 60 s in silence. Now a line every 5 s says how
        many are acknowledged, and a chunk that makes no progress within 60 s ends the run
        with a message naming this phase.
        """
        self.say(f"recovery: holding {len(targets):,} reservations, 2,000 at a time ...")
        acked = answered = 0

        async def one(x: str) -> bool:
            nonlocal acked, answered
            m = Reserve(f"{self.run_id}-h-{x}", x, 1, f"cart-{x}", f"fan-{x}", TTL_S)
            ok = (await client.submit(m)).error is None
            answered += 1
            acked += ok
            return ok

        for i, part in enumerate(chunks(targets, 2_000)):
            what = (
                f"chunk {i + 1}: {len(part):,} reserves on distinct SKUs of one shard "
                f"to be answered"
            )
            async with bounded(
                self.say, "recovery (holding reservations)", what, 60,
                lambda: f"{answered:,} of {len(targets):,} answered, {acked:,} acknowledged",
                every_s=5,
            ):  # fmt: skip
                await asyncio.gather(*(one(x) for x in part))
            self.say(f"  {answered:,} of {len(targets):,} answered, {acked:,} acknowledged")
        return acked

    async def kill_and_probe(
        self, h: Any, client: Any, names: list[str], attempt: int
    ) -> tuple[float, int, dict[str, int]]:
        old_pid = (await h.stats.remote())["pid"]
        loop = asyncio.get_running_loop()
        first: asyncio.Future[float] = loop.create_future()
        rng = random.Random(attempt)
        t0 = time.perf_counter()
        self.ray.kill(h, no_restart=False)
        # Probe only once the old process is gone, so that no probe is answered by it.
        if not await poll(lambda: not _alive(old_pid), 30.0, 0.002):
            raise Stalled(
                f"recovery on Ray, attempt {attempt + 1}",
                f"the killed shard (pid {old_pid}) to exit",
                30,
            )

        async def probe(i: int) -> str | None:
            rid = f"{self.run_id}-k{attempt}-{i}"
            sku = rng.choice(names)
            out = await client.submit(Reserve(rid, sku, 1, f"cart-{rid}", f"fan-{rid}", TTL_S))
            if out.error is None:
                if not first.done():
                    first.set_result(time.perf_counter())
                return None
            return type(out.error).__name__

        tasks: list[asyncio.Task[str | None]] = []
        while not first.done() and time.perf_counter() - t0 < 120:
            tasks.append(asyncio.create_task(probe(len(tasks))))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(first), 0.01)
        if not first.done():
            for t in tasks:
                t.cancel()
            raise Stalled(
                f"recovery on Ray, attempt {attempt + 1}",
                "a reserve to succeed on the restarted shard", 120,
                f"{len(tasks):,} probes sent, none acknowledged",
            )  # fmt: skip
        async with bounded(self.say, "recovery on Ray", "the probes in flight", 60):
            results = await asyncio.gather(*tasks)
        errors = Counter(r for r in results if r is not None)
        return first.result() - t0, len(tasks), dict(errors)
