"""The conventional designs the inventory engine is measured against, on the same servers
and under the same load generator: ``Baselines.row_lock`` (one autocommit ``UPDATE ... WHERE
stock >= qty`` per reserve through a psycopg pool) and ``Baselines.redis_lua`` (a
check-and-decrement Lua script), each checking its stock counter against its acks."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg_pool import AsyncConnectionPool

from bench.inventory.config import HOT_STOCK
from bench.inventory.harness import BenchBase
from bench.inventory.load import drive

ROW_LOCK_SQL = (
    "UPDATE bench_stock SET stock = stock - %(qty)s WHERE sku = %(sku)s AND stock >= %(qty)s"
)
RESERVE_LUA = """
local stock = tonumber(redis.call('GET', KEYS[1]))
local qty = tonumber(ARGV[1])
if stock == nil or stock < qty then return -1 end
return redis.call('DECRBY', KEYS[1], qty)
"""


class Baselines(BenchBase):
    async def row_lock(self, c: int, idle: dict[str, float]) -> dict[str, Any]:
        s = self.base
        sku = f"{self.prefix}-ROW-c{c}-{uuid.uuid4().hex[:6]}"
        await self.sql(
            "CREATE TABLE IF NOT EXISTS bench_stock (sku text PRIMARY KEY, stock bigint NOT NULL)"
        )
        await self.sql("INSERT INTO bench_stock (sku, stock) VALUES (%s, %s)", sku, HOT_STOCK)
        if self.cfg.analyze:
            await self.sql("ANALYZE bench_stock")
        size = min(c, 64)
        pool = AsyncConnectionPool(
            s.database_url,
            min_size=size,
            max_size=size,
            kwargs={"autocommit": True},
            open=False,
            name="bench-row-lock",
        )
        await pool.open(wait=True, timeout=60)
        try:

            async def op(w: int, seq: int) -> str | None:
                async with pool.connection() as conn:
                    cur = await conn.execute(ROW_LOCK_SQL, {"qty": 1, "sku": sku})
                    return None if cur.rowcount == 1 else "OutOfStock"

            cfg, phase = self.cfg, f"hot SKU, c={c}: row lock"
            load = await drive(op, c, cfg.warmup, cfg.seconds, self.meter, idle, self.say, phase)
        finally:
            await pool.close()
        res = load.summary()
        res["pool_connections"] = size
        stock = int(await self.sql("SELECT stock FROM bench_stock WHERE sku=%s", sku))
        res["check"] = {
            "acknowledged": load.acked_total,
            "decremented": HOT_STOCK - stock,
            "ok": HOT_STOCK - stock == load.acked_total,
        }
        return res

    async def redis_lua(self, c: int, idle: dict[str, float]) -> dict[str, Any]:
        import redis.asyncio as aioredis

        key = f"bench:{self.run_id}:stock:c{c}:{uuid.uuid4().hex[:6]}"
        pool = aioredis.ConnectionPool.from_url(self.base.redis_url, max_connections=c)
        r = aioredis.Redis(connection_pool=pool)
        try:
            await r.set(key, HOT_STOCK)
            script = r.register_script(RESERVE_LUA)

            async def op(w: int, seq: int) -> str | None:
                left = await script(keys=[key], args=[1])
                return None if int(left) >= 0 else "OutOfStock"

            cfg, phase = self.cfg, f"hot SKU, c={c}: Redis Lua"
            load = await drive(op, c, cfg.warmup, cfg.seconds, self.meter, idle, self.say, phase)
            stock = int(await r.get(key) or 0)
        finally:
            await r.aclose()
            await pool.aclose()
        res = load.summary()
        res["check"] = {
            "acknowledged": load.acked_total,
            "decremented": HOT_STOCK - stock,
            "ok": HOT_STOCK - stock == load.acked_total,
        }
        return res
