"""The state and helpers every phase of the inventory benchmark shares: ``BenchBase`` holds
the run's settings, pool, repository, CPU meter and results, starts and stops engines (and
retires their SKUs), runs SQL, refreshes statistics, waits for the outbox to drain, and deletes
what the run created on external servers. The phases are mixins on it (see ``runner``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psutil
import psycopg
from psycopg_pool import AsyncConnectionPool

from bench.costs import idle_window
from bench.inventory.config import ENGINE_TABLES, SETTLE_LIMIT_S, Config
from bench.inventory.cpu import CpuMeter, fmt_cores
from bench.inventory.load import poll
from bench.inventory.report import Progress
from bench.watch import bounded
from matchday.settings import Settings
from matchday.storage.inventory_repo import InventoryRepository


class BenchBase:
    def __init__(
        self, cfg: Config, ray: Any, base: Settings, external: dict[str, bool], say: Progress
    ) -> None:
        self.cfg = cfg
        self.ray = ray
        self.base = base
        self.external = external
        self.say = say
        self.run_id = uuid.uuid4().hex[:8]
        self.prefix = f"B{self.run_id}"
        self.meter = CpuMeter()
        self.running: list[Settings] = []
        self.pool: AsyncConnectionPool | None = None
        self.repo: InventoryRepository | None = None
        self.results: dict[str, Any] = {}

    # -- engine lifecycle ------------------------------------------------------------------

    def settings(self, tag: str, shards: int, dedicated: int) -> Settings:
        return self.base.model_copy(
            update={
                "namespace": f"{self.base.namespace}-{tag}",
                "shards": shards,
                "dedicated_shards": dedicated,
            }
        )

    async def start(self, s: Settings) -> dict[int, Any]:
        from actors.client import start_inventory

        self.running.append(s)
        self.say(
            f"starting engine: namespace {s.namespace}, {s.shards} ring + "
            f"{s.dedicated_shards} dedicated shards"
        )
        # Ray waits for resources, and retries calls to a crash-looping actor, without end.
        async with bounded(self.say, "starting the engine", "its shards to answer", 180):
            handles: dict[int, Any] = await asyncio.to_thread(start_inventory, s)
            pids = [(await h.stats.remote())["pid"] for h in handles.values()]
        self.meter.shard_pids = set(pids)
        return handles

    async def idle(self, label: str) -> dict[str, Any]:
        """Cores per role over ``cfg.idle_seconds`` with the engine up and no traffic."""
        self.say(f"{label}: idle window of {self.cfg.idle_seconds:g} s ...")
        idle = await asyncio.to_thread(idle_window, self.meter.snapshot, self.cfg.idle_seconds)
        self.say(f"  idle: {fmt_cores(idle['cores'])}")
        return idle

    async def stop(self, s: Settings) -> None:
        from actors.client import stop_inventory

        await asyncio.to_thread(stop_inventory, s)
        self.running.remove(s)
        pids = list(self.meter.shard_pids)
        if not await poll(lambda: not any(_alive(p) for p in pids), 15.0, 0.05):
            self.say(f"stopping the engine: shard processes {pids} still alive after 15 s")
        self.meter.shard_pids = set()

    async def retire(self, like: str) -> None:
        """Record the SKUs as owned by no shard, so later shards 0-4 never load them."""
        await self.sql("UPDATE inventory SET shard_id = -1 WHERE sku LIKE %s", like)

    async def sql(self, query: str, *params: Any) -> Any:
        assert self.pool is not None
        async with self.pool.connection() as conn:
            cur = await conn.execute(query, params)
            if cur.description is None:
                return None
            row = await cur.fetchone()
            return row[0] if row else None

    async def settle(self, label: str) -> dict[str, Any]:
        """Let PostgreSQL and Redis finish the work earlier phases left them, before a window
        is measured: a checkpoint, a VACUUM of the tables the phases wrote, autovacuum's
        workers done, and no Redis save or AOF rewrite running. Without it, rounds 2 and 3
        measured PostgreSQL's catch-up in their idle window (0.09-0.16 cores against none in
        round 1) and subtracted it from their phases: net figures moved by 5-9 us per reserve
        from round to round. What the catch-up costs is kept, and reported, apart."""
        before, t = self.meter.snapshot(), time.perf_counter()
        if not self.external["postgres"]:  # a shared server's upkeep is not ours to force
            async with await psycopg.AsyncConnection.connect(
                self.base.database_url, autocommit=True
            ) as conn:
                await conn.execute("CHECKPOINT")
                tables = [*ENGINE_TABLES, "bench_stock"]
                found = await (
                    await conn.execute("SELECT to_regclass(t) FROM unnest(%s::text[]) t", (tables,))
                ).fetchall()
                names = ", ".join(str(r[0]) for r in found if r[0] is not None)
                await conn.execute(f"VACUUM {'(ANALYZE) ' if self.cfg.analyze else ''}{names}")
                await _until(lambda: self._autovacuum_idle(conn), SETTLE_LIMIT_S)
        if not self.external["redis"]:
            await _until(self._redis_idle, SETTLE_LIMIT_S)
        after = self.meter.snapshot()
        secs = after.at - before.at
        cpu = {k: round(v * secs, 3) for k, v in self.meter.cores(before, after).items()}
        shown = {k: v for k, v in cpu.items() if v >= 0.05 and k in ("postgres", "redis")}
        self.say(
            f"  {label}: settled in {time.perf_counter() - t:.1f} s"
            + "".join(f", {k} {v:.2f} CPU s" for k, v in shown.items())
        )
        return {"label": label, "seconds": round(secs, 2), "cpu_s": cpu}

    @staticmethod
    async def _autovacuum_idle(conn: psycopg.AsyncConnection[Any]) -> bool:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
        )
        row = await cur.fetchone()
        return row is not None and row[0] == 0

    async def _redis_idle(self) -> bool:
        import redis.asyncio as aioredis

        r = aioredis.Redis.from_url(self.base.redis_url)
        try:
            info = await r.info("persistence")
        finally:
            await r.aclose()
        return not (info.get("aof_rewrite_in_progress") or info.get("rdb_bgsave_in_progress"))

    async def analyze(self) -> None:
        """Refresh planner statistics, as autovacuum does on a database that has run a while.

        A fresh database has none, and autovacuum's first pass comes only after
        ``autovacuum_naptime`` (60 s): until then PostgreSQL plans the shard's journal lookup
        (``request_id = ANY(...)``) as a sequential scan of the whole, fast-growing journal.
        ``--no-analyze`` skips this to show that cold-statistics behaviour.
        """
        if not self.cfg.analyze:
            return
        for tbl in ENGINE_TABLES:
            await self.sql(f"ANALYZE {tbl}")

    async def drain_outbox(self, limit_s: float = 60.0) -> tuple[int, float]:
        """Wait for the outbox relay to catch up; (backlog when called, seconds to drain)."""
        t = time.perf_counter()
        backlog = n = int(await self.sql("SELECT count(*) FROM inventory_outbox"))
        while n and time.perf_counter() - t < limit_s:
            await asyncio.sleep(0.1)
            n = int(await self.sql("SELECT count(*) FROM inventory_outbox"))
        if n:  # the relay is behind, not the engine: say so and carry on
            self.say(f"  the outbox relay left {n:,} of {backlog:,} events after {limit_s:.0f} s")
        return backlog, round(time.perf_counter() - t, 2)

    # -- teardown of external data -----------------------------------------------------------

    async def purge_external(self) -> None:
        """On servers the benchmark did not start, delete what it created."""
        if self.external["postgres"] and self.pool is not None:
            like = f"{self.prefix}-%"
            for tbl in (
                "sku_pins",
                "reservations",
                "customer_units",
                "inventory_journal",
                "inventory_outbox",
                "inventory",
            ):
                with contextlib.suppress(psycopg.Error):
                    await self.sql(f"DELETE FROM {tbl} WHERE sku LIKE %s", like)
            with contextlib.suppress(psycopg.Error):
                await self.sql("DELETE FROM bench_stock WHERE sku LIKE %s", like)
        if self.external["redis"]:
            import redis.asyncio as aioredis

            r = aioredis.Redis.from_url(self.base.redis_url)
            try:
                keys = [k async for k in r.scan_iter(match=f"bench:{self.run_id}:*")]
                keys += [self.base.stream_name, self.base.availability_key]
                await r.delete(*keys)
            finally:
                await r.aclose()


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


async def _until(check: Callable[[], Awaitable[bool]], limit_s: float) -> bool:
    """Wait until ``check()`` holds or ``limit_s`` passes; whether it holds."""
    deadline = time.monotonic() + limit_s
    while not await check():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.2)
    return True
