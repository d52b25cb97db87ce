"""The engine's throughput phases of the inventory benchmark: ``EngineRuns.hot_sku``
(phase 1, ``--runs`` rounds on fresh engines: an idle window, then one pinned hot SKU on a
dedicated shard at each concurrency, then the row lock and Redis Lua at the same
concurrency, with batching, durability, ratios and CPU per reserve by role) and
``EngineRuns.scaling`` (phase 2: reserves over 10,000 SKUs on 1, 2 and 4 ring shards)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from bench.inventory.baselines import Baselines
from bench.inventory.config import HOT_STOCK, SCALE_SHARDS, SCALE_SKUS, SKU_STOCK
from bench.inventory.load import any_sku, drive, engine_op, one_sku
from bench.inventory.report import brief, fmt_ms, fmt_rate
from bench.watch import bounded
from matchday.inventory.records import SkuRow
from matchday.inventory.routing import Router


class EngineRuns(Baselines):
    # -- 1. hot SKU ------------------------------------------------------------------------

    async def hot_sku(self) -> None:
        """``cfg.runs`` rounds, each on a fresh engine: an idle window, then at each
        concurrency the engine, the row lock and Redis Lua one after the other."""
        out: dict[str, Any] = {"runs": [], "idle": [], "settle": []}
        self.results["hot_sku"] = out  # filled in as phases finish: a failed run keeps them
        for r in range(self.cfg.runs):
            run: dict[str, Any] = {}
            out["runs"].append(run)
            s = self.settings(f"hot{r}", shards=2, dedicated=1)
            handles = await self.start(s)
            try:
                await self.prime(s, handles, r)
                settle = out["settle"].append
                settle(await self.settle(f"run {r + 1}, before the idle window"))
                idle = await self.idle(f"hot SKU, run {r + 1} of {self.cfg.runs}")
                out["idle"].append(idle)
                for c in self.cfg.concurrency:
                    run[str(c)] = res = {}
                    tag = f"run {r + 1}, c={c}"
                    settle(await self.settle(f"{tag}, before the engine"))
                    res["engine"] = await self.engine_phase(s, handles, r, c, idle["cores"])
                    settle(await self.settle(f"{tag}, before the row lock"))
                    self.say(f"hot SKU, {tag}: PostgreSQL row lock ...")
                    res["row_lock"] = await self.row_lock(c, idle["cores"])
                    self.say(f"  row lock  {brief(res['row_lock'])}")
                    settle(await self.settle(f"{tag}, before Redis Lua"))
                    self.say(f"hot SKU, {tag}: Redis Lua ...")
                    res["redis_lua"] = await self.redis_lua(c, idle["cores"])
                    self.say(f"  Redis Lua {brief(res['redis_lua'])}")
                    e = res["engine"]["reserves_per_s"]
                    res["ratios"] = {
                        "engine_vs_row_lock": round(
                            e / max(res["row_lock"]["reserves_per_s"], 1e-9), 2
                        ),
                        "engine_vs_redis_lua": round(
                            e / max(res["redis_lua"]["reserves_per_s"], 1e-9), 3
                        ),
                    }
            finally:
                await self.stop(s)
                await self.retire(f"{self.prefix}-HOT{r}-%")

    async def prime(self, s: Any, handles: dict[int, Any], r: int, n: int = 512) -> None:
        """``n`` reserves on a SKU pinned to the dedicated shard, unmeasured: a fresh engine's
        first calls pay one-time costs (imports, connections, plans) that would otherwise
        land in the idle window or the first measured phase."""
        from actors.client import connect_client
        from actors.pinning import pin_sku

        assert self.repo is not None
        router = Router(s.shards, s.dedicated_shards)
        sku = f"{self.prefix}-HOT{r}-prime"
        await self.repo.create_skus([SkuRow(sku, HOT_STOCK, 0, 0)], router)
        await pin_sku(self.repo, router, handles, sku)
        op = engine_op([connect_client(s, handles)], one_sku(sku), f"{self.run_id}-p{r}", 16)
        self.say(f"hot SKU, run {r + 1}: priming the engine with {n} reserves ...")
        async with bounded(self.say, "priming the engine", f"{n} reserves", 120):
            for seq in range(n // 16):
                await asyncio.gather(*(op(w, seq) for w in range(16)))
        await self.drain_outbox()

    async def engine_phase(
        self, s: Any, handles: dict[int, Any], r: int, c: int, idle: dict[str, float]
    ) -> dict[str, Any]:
        """One SKU pinned to the dedicated shard, driven by C callers; batching, durability."""
        from actors.client import connect_client
        from actors.pinning import pin_sku

        assert self.repo is not None
        cfg = self.cfg
        router = Router(s.shards, s.dedicated_shards)
        sku = f"{self.prefix}-HOT{r}-c{c}"
        await self.repo.create_skus([SkuRow(sku, HOT_STOCK, 0, 0)], router)
        shard = await pin_sku(self.repo, router, handles, sku)
        clients = [connect_client(s, handles) for _ in range(cfg.clients)]
        before = await handles[shard].stats.remote()
        op = engine_op(clients, one_sku(sku), f"{self.run_id}-e{r}-{c}", c)
        await self.analyze()
        phase = f"hot SKU, run {r + 1}, c={c}: engine"
        self.say(f"{phase} (shard {shard}, dedicated) ...")
        load = await drive(op, c, cfg.warmup, cfg.seconds, self.meter, idle, self.say, phase)
        after = await handles[shard].stats.remote()
        calls = sum(b for cl in clients for b, _ in cl.stats().values())
        items = sum(n for cl in clients for _, n in cl.stats().values())
        tx = after["batches"] - before["batches"]
        muts = after["mutations"] - before["mutations"]
        engine = load.summary()
        engine["shard"] = shard
        engine["batching"] = {
            "actor_calls": calls,
            "mutations_per_actor_call": round(items / max(calls, 1), 1),
            "transactions": tx,
            "mutations_per_transaction": round(muts / max(tx, 1), 1),
        }
        engine["durability"] = await self.durability(sku, load.acked_total)
        backlog, drain_s = await self.drain_outbox()
        engine["outbox"] = {"backlog_after_phase": backlog, "drain_s": drain_s}
        d = engine["durability"]
        self.say(
            f"  engine    {brief(engine)}; {engine['batching']['mutations_per_transaction']} "
            f"per transaction; durability {'OK' if d['ok'] else 'FAILED'} "
            f"({d['acknowledged']} acked, {d['postgres_reserved']} reserved in PostgreSQL)"
        )
        return engine

    async def durability(self, sku: str, acked: int) -> dict[str, Any]:
        """PostgreSQL's reserved counter, held rows and journal rows against the acks."""
        reserved = int(await self.sql("SELECT reserved FROM inventory WHERE sku=%s", sku))
        held = int(
            await self.sql("SELECT count(*) FROM reservations WHERE sku=%s AND status='held'", sku)
        )
        journal = int(
            await self.sql(
                "SELECT count(*) FROM inventory_journal WHERE sku=%s AND kind='reserve'", sku
            )
        )
        return {
            "acknowledged": acked,
            "postgres_reserved": reserved,
            "held_reservation_rows": held,
            "journal_rows": journal,
            "ok": reserved == held == journal == acked,
        }

    # -- 2. scaling ------------------------------------------------------------------------

    async def scaling(self) -> None:
        from actors.client import connect_client

        assert self.repo is not None
        c = self.cfg.concurrency[0]
        rows: list[dict[str, Any]] = []
        self.results["scaling"] = rows
        for n in SCALE_SHARDS:
            s = self.settings(f"scale{n}", shards=n, dedicated=0)
            router = Router(n, 0)
            like = f"{self.prefix}-S{n}-%"
            skus = [f"{self.prefix}-S{n}-{i:05d}" for i in range(SCALE_SKUS)]
            await self.repo.create_skus([SkuRow(x, SKU_STOCK, 0, 0) for x in skus], router)
            per_shard = Counter(router.owner(x) for x in skus)
            await self.analyze()
            handles = await self.start(s)
            try:
                await self.settle(f"scaling, {n} shard(s)")
                client = connect_client(s, handles)
                op = engine_op([client], any_sku(skus), f"{self.run_id}-s{n}", c)
                phase = f"scaling, {n} shard(s), c={c}"
                self.say(f"{phase}, {SCALE_SKUS:,} SKUs ...")
                stats0 = [await h.stats.remote() for h in handles.values()]
                # No idle window here: these CPU figures are gross (see the report).
                cfg = self.cfg
                load = await drive(op, c, cfg.warmup, cfg.seconds, self.meter, {}, self.say, phase)
                stats1 = [await h.stats.remote() for h in handles.values()]
                res = load.summary()
                tx = sum(b["batches"] - a["batches"] for a, b in zip(stats0, stats1, strict=True))
                muts = sum(
                    b["mutations"] - a["mutations"] for a, b in zip(stats0, stats1, strict=True)
                )
                reserved = int(
                    await self.sql(
                        "SELECT coalesce(sum(reserved), 0) FROM inventory WHERE sku LIKE %s", like
                    )
                )
                calls = sum(b for b, _ in client.stats().values())
                items = sum(i for _, i in client.stats().values())
                res.update(
                    {
                        "shards": n,
                        "skus": SCALE_SKUS,
                        "skus_per_shard": [per_shard[i] for i in range(n)],
                        "mutations_per_actor_call": round(items / max(calls, 1), 1),
                        "mutations_per_transaction": round(muts / max(tx, 1), 1),
                        "durability": {
                            "acknowledged": load.acked_total,
                            "postgres_reserved": reserved,
                            "ok": reserved == load.acked_total,
                        },
                    }
                )
                res["outbox"] = dict(
                    zip(("backlog_after_phase", "drain_s"), await self.drain_outbox(), strict=True)
                )
                rows.append(res)
                self.say(
                    f"  {n} shard(s): {fmt_rate(load.rate)} reserves/s, p50 "
                    f"{fmt_ms(res['p50_ms'])} ms, p99 {fmt_ms(res['p99_ms'])} ms, "
                    f"{res['mutations_per_transaction']} per transaction; durability "
                    f"{'OK' if res['durability']['ok'] else 'FAILED'}"
                )
            finally:
                await self.stop(s)
                await self.retire(like)
        base = rows[0]["reserves_per_s"] if rows else 0
        for r in rows:
            r["speedup_vs_1_shard"] = round(r["reserves_per_s"] / base, 2) if base else None
