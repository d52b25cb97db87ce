"""The engine's throughput phases of the inventory benchmark: ``EngineRuns.hot_sku``
(phase 1: one pinned hot SKU on a dedicated shard at each concurrency, then the row lock and
Redis Lua at the same concurrency, with batching, durability and ratios) and
``EngineRuns.scaling`` (phase 2: reserves over 10,000 SKUs on 1, 2 and 4 ring shards)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.inventory.baselines import Baselines
from bench.inventory.config import (
    HOT_STOCK,
    SCALE_SHARDS,
    SCALE_SKUS,
    SKU_STOCK,
    TARGET_VS_REDIS,
    TARGET_VS_ROW_LOCK,
)
from bench.inventory.load import any_sku, drive, engine_op, one_sku
from bench.inventory.report import fmt_ms, fmt_rate
from matchday.inventory.records import SkuRow
from matchday.inventory.routing import Router


class EngineRuns(Baselines):
    # -- 1. hot SKU ------------------------------------------------------------------------

    async def hot_sku(self) -> None:
        from actors.client import connect_client
        from actors.pinning import pin_sku

        assert self.repo is not None
        cfg = self.cfg
        s = self.settings("hot", shards=2, dedicated=1)
        handles = await self.start(s)
        router = Router(s.shards, s.dedicated_shards)
        out: dict[str, Any] = {}
        try:
            for c in cfg.concurrency:
                res: dict[str, Any] = {}
                out[str(c)] = res  # filled in as phases finish: an interrupted run keeps them
                # (a) the engine
                sku = f"{self.prefix}-HOT-c{c}"
                await self.repo.create_skus([SkuRow(sku, HOT_STOCK, 0, 0)], router)
                shard = await pin_sku(self.repo, router, handles, sku)
                clients = [connect_client(s, handles) for _ in range(cfg.clients)]
                before = await handles[shard].stats.remote()
                op = engine_op(clients, one_sku(sku), f"{self.run_id}-e{c}", c)
                await self.analyze()
                self.say(f"hot SKU, c={c}: engine (shard {shard}, dedicated) ...")
                load = await drive(op, c, cfg.warmup, cfg.seconds, self.meter)
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
                reserved = int(await self.sql("SELECT reserved FROM inventory WHERE sku=%s", sku))
                held = int(
                    await self.sql(
                        "SELECT count(*) FROM reservations WHERE sku=%s AND status='held'", sku
                    )
                )
                journal = int(
                    await self.sql(
                        "SELECT count(*) FROM inventory_journal WHERE sku=%s AND kind='reserve'",
                        sku,
                    )
                )
                acked = load.acked_total
                engine["durability"] = {
                    "acknowledged": acked,
                    "postgres_reserved": reserved,
                    "held_reservation_rows": held,
                    "journal_rows": journal,
                    "ok": reserved == held == journal == acked,
                }
                backlog, drain_s = await self.drain_outbox()
                engine["outbox"] = {"backlog_after_phase": backlog, "drain_s": drain_s}
                res["engine"] = engine
                self.say(
                    f"  engine    {fmt_rate(load.rate)} reserves/s, p50 "
                    f"{fmt_ms(engine['p50_ms'])} ms, p99 {fmt_ms(engine['p99_ms'])} ms; "
                    f"{engine['batching']['mutations_per_transaction']} per transaction; "
                    f"durability {'OK' if engine['durability']['ok'] else 'FAILED'} "
                    f"({acked} acked, {reserved} reserved in PostgreSQL)"
                )
                # (b) the row lock
                self.say(f"hot SKU, c={c}: PostgreSQL row lock ...")
                res["row_lock"] = await self.row_lock(c)
                self.say(
                    f"  row lock  {fmt_rate(res['row_lock']['reserves_per_s'])} reserves/s, "
                    f"p50 {fmt_ms(res['row_lock']['p50_ms'])} ms, "
                    f"p99 {fmt_ms(res['row_lock']['p99_ms'])} ms"
                )
                # (c) Redis Lua
                self.say(f"hot SKU, c={c}: Redis Lua ...")
                res["redis_lua"] = await self.redis_lua(c)
                self.say(
                    f"  Redis Lua {fmt_rate(res['redis_lua']['reserves_per_s'])} reserves/s, "
                    f"p50 {fmt_ms(res['redis_lua']['p50_ms'])} ms, "
                    f"p99 {fmt_ms(res['redis_lua']['p99_ms'])} ms"
                )
                e = res["engine"]["reserves_per_s"]
                res["ratios"] = {
                    "engine_vs_row_lock": round(
                        e / max(res["row_lock"]["reserves_per_s"], 1e-9), 2
                    ),
                    "engine_vs_redis_lua": round(
                        e / max(res["redis_lua"]["reserves_per_s"], 1e-9), 3
                    ),
                    "target_vs_row_lock": TARGET_VS_ROW_LOCK,
                    "target_vs_redis_lua": TARGET_VS_REDIS,
                }
        finally:
            self.results["hot_sku"] = out
            await self.stop(s)
            await self.retire(f"{self.prefix}-HOT-%")

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
                client = connect_client(s, handles)
                op = engine_op([client], any_sku(skus), f"{self.run_id}-s{n}", c)
                self.say(f"scaling, {n} shard(s), c={c}, {SCALE_SKUS:,} SKUs ...")
                stats0 = [await h.stats.remote() for h in handles.values()]
                load = await drive(op, c, self.cfg.warmup, self.cfg.seconds, self.meter)
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
