"""Inventory-engine benchmark: the shard actors against a PostgreSQL row lock and Redis Lua.

Usage::

    python -m bench.inventory                          # full run, about 2.5 minutes
    python -m bench.inventory --quick                  # about 40 s (the smoke test's call)
    python -m bench.inventory --seconds 20 --concurrency 64 16 256 --json /tmp/inv.json

Options:

``--seconds S``        measured seconds of every throughput phase (default 10; 2 with --quick)
``--warmup W``         unmeasured seconds before each (default 2; 0.5 with --quick)
``--concurrency C ..`` client concurrencies of the hot-SKU comparison (default 64 16); the
                       scaling phase uses the first one
``--clients N``        InventoryClient instances the engine's load is spread over, like N
                       Serve replicas in one process (default 1)
``--quick``            short phases and 20,000 SKUs instead of 100,000 for memory and recovery
``--no-analyze``       do not refresh PostgreSQL's planner statistics (ANALYZE) before the
                       engine phases; see "Statistics" below
``--json PATH``        where to write every figure (default bench/results/inventory-<time>.json)

Where it runs. Embedded PostgreSQL and Redis (``matchday.embedded.start_servers``) in a fresh
temporary directory, on Unix sockets, unless MATCHDAY_DATABASE_URL / MATCHDAY_REDIS_URL are
set; a private Ray (``num_cpus=2``, no dashboard, loopback only, ``RAY_AUTH_MODE=disabled``).
Everything is stopped and the temporary directory removed at the end, even on error, Ctrl-C,
SIGTERM, or a phase that makes no progress within its time limit (then the exit status is 1
and the figures gathered so far are still printed and written). Point
the URLs at a scratch database only, never at one a running engine uses: the benchmark's
shard actors claim shard epochs 0-4 and would fence that engine's shards off. On external
servers the benchmark deletes the rows and keys it created when it ends.

One database serves every configuration, and a shard loads every SKU recorded with its
shard id, whatever the Ray namespace. So SKU names are unique per configuration, and when a
configuration's engine is stopped its SKUs are retired (recorded with shard -1): the next
configuration's shards start out holding none of them. After each hot-SKU engine phase the
outbox relay is given time to drain before the baselines run.

Statistics. The database is brand new, and autovacuum looks at it only once per
``autovacuum_naptime`` (60 s). Without statistics PostgreSQL plans the shard's per-batch
journal lookup (``request_id = ANY(...)``) as a sequential scan of the whole journal, so the
engine would slow down as its journal grows. A database that has run a while has been
analyzed, so the benchmark runs ANALYZE on the engine's tables (and on ``bench_stock``)
before each phase; ``--no-analyze`` shows the cold-statistics behaviour instead.

Load generator. The same shape for every system: C worker coroutines in this process's one
asyncio loop, each looping "send one reserve of 1 unit, await its acknowledgement". After
``--warmup`` seconds, reserves acknowledged during the next ``--seconds`` seconds count:

``reserves/s``  acknowledged reserves completed in the window / window seconds
``p50/p99/max`` latency of those reserves, submit to acknowledgement, in milliseconds
                (nearest-rank percentiles; p99.9 is in the JSON)
``errors``      reserves answered with an error in the window (none are expected)
``cores used``  CPU seconds per second during the window, per group of the benchmark's
                own processes: ``driver`` (this process: the load generator, plus the
                engine's client library and Ray's client side for the engine), ``shards``
                (the shard actor processes), ``postgres`` (the embedded server's
                processes; absent when MATCHDAY_DATABASE_URL is set), ``redis``, ``relay``
                (the outbox relay actor), ``ray`` (raylet, GCS and other Ray processes);
                then ``other`` (everything else on the machine: foreign load),
                ``machine`` (all busy CPU; at most 2.0 on the reference machine) and
                ``steal`` (CPU the hypervisor took). Groups under 0.005 are not printed.

Figures, in the order printed:

1. Hot SKU, durable acks. Every reserve targets ONE SKU whose stock never runs out, at each
   concurrency in ``--concurrency``:

   ``engine``     the shard actors on Ray as deployed: ``start_inventory`` with 2 ring shards
                  and 1 dedicated shard; the SKU is pinned to the dedicated shard
                  (``actors.pinning.pin_sku``) and driven through ``InventoryClient`` from
                  ``connect_client``. Every reserve has a unique request id, cart and
                  customer; an acknowledgement means the reservation, its journal row, the
                  counters and the outbox row are committed (fsync on, synchronous_commit on).
   ``row lock``   the conventional design: a psycopg AsyncConnectionPool with as many
                  connections as the concurrency (at most 64) running ``UPDATE bench_stock SET
                  stock = stock - $1 WHERE sku = $2 AND stock >= $1`` in autocommit, one
                  transaction per reserve, against the same PostgreSQL.
   ``Redis Lua``  a check-and-decrement Lua script (EVALSHA via redis-py's register_script)
                  through redis.asyncio against the same Redis. Its acks are NOT durable in
                  the same sense: the embedded Redis appends with ``appendfsync everysec``.

   Ratios: ``engine/row-lock`` (target >= 10x) and ``engine/Redis-Lua`` (target >= 0.5x), of
   reserves/s at the same concurrency. ``batching``: the engine's mutations per actor call
   (client side) and per PostgreSQL transaction (shard side). ``durability``: after each
   engine phase, PostgreSQL's ``inventory.reserved`` of the hot SKU, its held reservation
   rows and its journal rows must each equal the number of acknowledged reserves (warm-up
   included). The row-lock and Redis stock counters are checked the same way.

2. Scaling: reserves spread uniformly at random over 10,000 SKUs (created with
   ``create_skus`` and the matching Router, so each is recorded with its shard) with 1, 2
   and 4 ring shards (dedicated 0), each configuration a fresh engine in its own Ray
   namespace. ``speedup`` is reserves/s relative to 1 shard. On 2 cores more than 2 shards
   cannot add CPU; the figure shows what sharding costs or buys on this machine.

3. Memory per 100k SKUs: RSS of the shard actor process (pid from ``stats``) after it
   adopted N SKUs (100,000; 20,000 with --quick), minus its RSS right before, holding none;
   scaled to 100,000 SKUs. Also the RSS of a fresh process holding them (after the restart
   of figure 4 ii) minus the fresh process holding none.

4. Recovery of a shard holding N SKUs and N/10 held reservations (target < 2 s):
   (i)  in-process: ``await ShardCore(0, Router(1), InventoryRepository(pool)).start()``
        (claim the epoch, load the SKUs, reservations and customer totals, build ledgers
        and timers), with the engine's shard stopped; min and median of the attempts.
   (ii) on Ray: ``ray.kill(handle, no_restart=False)``, then the time until a reserve
        through the client succeeds again (probes sent every 10 ms once the old process
        is gone; the clock starts just before the kill). Includes Ray's restart of the
        worker process, imports, the shard's recovery and the first group commit.

``notes`` (printed last) flag what the figures themselves reveal: a phase whose load
generator used a whole core (its figure is bounded by the load generator, not the system
under test), a phase that kept every core busy, foreign load or hypervisor steal, row-lock
p99 far above p50, Redis acks that are not fsynced one by one, and whether statistics were
refreshed.

A JSON of every figure, the settings and the machine goes to ``--json`` or
bench/results/inventory-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg_pool import AsyncConnectionPool

from cluster.local import keep_ray_on_loopback
from matchday.embedded import remove_tree, start_servers
from matchday.inventory.commands import Reserve
from matchday.inventory.records import SkuRow
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.settings import Settings
from matchday.storage.db import make_pool, migrate
from matchday.storage.inventory_repo import InventoryRepository

TARGET_VS_ROW_LOCK = 10.0
TARGET_VS_REDIS = 0.5
TARGET_RECOVERY_S = 2.0

HOT_STOCK = 10**12  # never sells out
SKU_STOCK = 1_000_000
TTL_S = 3600.0  # no reservation expires while the benchmark runs
SCALE_SKUS = 10_000
SCALE_SHARDS = (1, 2, 4)

ROW_LOCK_SQL = (
    "UPDATE bench_stock SET stock = stock - %(qty)s WHERE sku = %(sku)s AND stock >= %(qty)s"
)
RESERVE_LUA = """
local stock = tonumber(redis.call('GET', KEYS[1]))
local qty = tonumber(ARGV[1])
if stock == nil or stock < qty then return -1 end
return redis.call('DECRBY', KEYS[1], qty)
"""

ENGINE_TABLES = (
    "inventory",
    "sku_pins",
    "reservations",
    "customer_units",
    "inventory_journal",
    "inventory_outbox",
    "shard_epochs",
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"


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


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


# -- CPU accounting ------------------------------------------------------------------------


# (monotonic time, machine busy CPU s, machine steal CPU s, {(pid, started): (group, CPU s)})
Snapshot = tuple[float, float, float, dict[tuple[int, float], tuple[str, float]]]


class CpuMeter:
    """CPU seconds per second of each process group over a window (see the docstring).

    Only the benchmark's own processes are counted: this process and its descendants (Ray's
    GCS, raylet and workers, the embedded Redis) and the embedded PostgreSQL's postmaster
    and its backends. ``other`` is whatever else kept the machine busy meanwhile.
    """

    GROUPS = ("driver", "shards", "postgres", "redis", "relay", "ray")

    def __init__(self) -> None:
        self.shard_pids: set[int] = set()
        self.me = os.getpid()
        self.postmaster: int | None = None

    def _group(self, pid: int, name: str, cmdline: list[str]) -> str:
        if pid == self.me:
            return "driver"
        if pid in self.shard_pids:
            return "shards"
        if name.startswith("postgres"):
            return "postgres"
        if name.startswith("redis-server"):
            return "redis"
        if "EventPublisher" in " ".join(cmdline):
            return "relay"
        return "ray"

    def _ours(self) -> list[psutil.Process]:
        procs: list[psutil.Process] = []
        for root in (self.me, self.postmaster):
            if root is None:
                continue
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(root)
                procs += [p, *p.children(recursive=True)]
        return procs

    def snapshot(self) -> Snapshot:
        procs: dict[tuple[int, float], tuple[str, float]] = {}
        for p in self._ours():
            with contextlib.suppress(psutil.Error), p.oneshot():
                times = p.cpu_times()
                group = self._group(p.pid, p.name(), p.cmdline())
                procs[(p.pid, p.create_time())] = (group, times.user + times.system)
        t = psutil.cpu_times()
        steal = getattr(t, "steal", 0.0)
        busy = sum(t) - t.idle - getattr(t, "iowait", 0.0) - steal
        return time.perf_counter(), busy, steal, procs

    @classmethod
    def cores(cls, before: Snapshot, after: Snapshot) -> dict[str, float]:
        wall = max(after[0] - before[0], 1e-9)
        used: defaultdict[str, float] = defaultdict(float)
        for key, (group, cpu) in after[3].items():
            prev = before[3].get(key)
            used[group] += cpu - (prev[1] if prev else 0.0)
        out = {g: round(used[g] / wall, 2) for g in cls.GROUPS}
        machine = (after[1] - before[1]) / wall
        out["other"] = round(max(0.0, machine - sum(used.values()) / wall), 2)
        out["machine"] = round(machine, 2)
        out["steal"] = round((after[2] - before[2]) / wall, 2)
        return out


def fmt_cores(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in cpu.items() if v >= 0.005 or k == "machine")


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
    cpu: dict[str, float] = field(default_factory=dict)

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
            "cores_used": self.cpu,
        }


def _round(x: float | None, n: int = 3) -> float | None:
    return None if x is None else round(x, n)


async def drive(op: Op, concurrency: int, warmup: float, seconds: float, meter: CpuMeter) -> Load:
    """C workers looping on ``op``; count what completes in [warm-up end, + seconds)."""
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
        load.cpu = meter.cores(before, after)

    async with asyncio.timeout(warmup + seconds + 120):
        await asyncio.gather(watch(), *(worker(w) for w in range(concurrency)))
    return load


def engine_op(clients: list[Any], pick: Pick, tag: str, concurrency: int) -> Op:
    """Reserves of 1 unit through InventoryClients; unique request, cart and customer ids."""
    rngs = [random.Random(f"{tag}-{w}") for w in range(concurrency)]

    async def op(w: int, seq: int) -> str | None:
        rid = f"{tag}-{w}-{seq}"
        m = Reserve(rid, pick(w, rngs[w]), 1, f"cart-{rid}", f"fan-{rid}", TTL_S)
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


# -- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    seconds: float
    warmup: float
    concurrency: list[int]
    clients: int
    quick: bool
    memory_skus: int
    held_reservations: int
    recovery_attempts: int
    analyze: bool = True


def chunks(items: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class Bench:
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
        handles: dict[int, Any] = await asyncio.to_thread(start_inventory, s)
        pids = [(await h.stats.remote())["pid"] for h in handles.values()]
        self.meter.shard_pids = set(pids)
        return handles

    async def stop(self, s: Settings) -> None:
        from actors.client import stop_inventory

        await asyncio.to_thread(stop_inventory, s)
        self.running.remove(s)
        pids = list(self.meter.shard_pids)
        await poll(lambda: not any(_alive(p) for p in pids), 15.0, 0.05)
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
        return backlog, round(time.perf_counter() - t, 2)

    # -- 0. environment --------------------------------------------------------------------

    async def describe(self) -> None:
        import ray
        import redis.asyncio as aioredis

        s = self.base
        pg_settings = {}
        for name in (
            "server_version",
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
            "shared_buffers",
            "max_connections",
        ):
            pg_settings[name] = await self.sql(f"SHOW {name}")
        r = aioredis.Redis.from_url(s.redis_url)
        try:
            info = await r.info()
            appendfsync = (await r.config_get("appendfsync")).get("appendfsync")
        finally:
            await r.aclose()
        data_dir = s.data_dir.resolve()
        fs = _filesystem(data_dir)
        cpu_model = _cpu_model()
        meta: dict[str, Any] = {
            "run_id": self.run_id,
            "started": datetime.now().isoformat(timespec="seconds"),
            "argv": sys.argv,
            "config": {
                "seconds": self.cfg.seconds,
                "warmup_s": self.cfg.warmup,
                "concurrency": self.cfg.concurrency,
                "clients": self.cfg.clients,
                "quick": self.cfg.quick,
                "memory_skus": self.cfg.memory_skus,
                "held_reservations": self.cfg.held_reservations,
                "analyze": self.cfg.analyze,
            },
            "machine": {
                "cpus": psutil.cpu_count(),
                "cpu_model": cpu_model,
                "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "ray": ray.__version__,
                "psycopg": psycopg.__version__,
                "data_dir": str(data_dir),
                "data_dir_filesystem": fs,
            },
            "postgres": {**pg_settings, "embedded": not self.external["postgres"]},
            "redis": {
                "version": info.get("redis_version"),
                "appendonly": info.get("aof_enabled"),
                "appendfsync": appendfsync,
                "embedded": not self.external["redis"],
            },
            "git": _git_state(),
            "engine_settings": {
                "max_batch": s.max_batch,
                "client_in_flight": s.client_in_flight,
                "shard_cache_size": s.shard_cache_size,
            },
        }
        self.results["meta"] = meta
        self.say(
            f"machine: {meta['machine']['cpus']} CPUs ({cpu_model}), Python "
            f"{meta['machine']['python']}, Ray {ray.__version__}; PostgreSQL "
            f"{pg_settings['server_version']} (fsync={pg_settings['fsync']}, "
            f"synchronous_commit={pg_settings['synchronous_commit']}), Redis "
            f"{info.get('redis_version')} (appendfsync={appendfsync}); data on {fs}"
        )
        git = meta["git"]
        if git:
            changed = ", ".join(x[3:] for x in git["changed"]) or "none"
            self.say(f"engine code: commit {git['commit'][:12]}; uncommitted changes: {changed}")

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

    async def row_lock(self, c: int) -> dict[str, Any]:
        s = self.base
        sku = f"{self.prefix}-ROW-c{c}"
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

            load = await drive(op, c, self.cfg.warmup, self.cfg.seconds, self.meter)
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

    async def redis_lua(self, c: int) -> dict[str, Any]:
        import redis.asyncio as aioredis

        key = f"bench:{self.run_id}:stock:c{c}"
        pool = aioredis.ConnectionPool.from_url(self.base.redis_url, max_connections=c)
        r = aioredis.Redis(connection_pool=pool)
        try:
            await r.set(key, HOT_STOCK)
            script = r.register_script(RESERVE_LUA)

            async def op(w: int, seq: int) -> str | None:
                left = await script(keys=[key], args=[1])
                return None if int(left) >= 0 else "OutOfStock"

            load = await drive(op, c, self.cfg.warmup, self.cfg.seconds, self.meter)
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
            for chunk in chunks(names, 10_000):
                await h.adopt.remote(chunk)
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
            self.say(f"recovery: holding {len(targets):,} reservations ...")
            held_ok = 0
            for part in chunks(targets, 2_000):
                async with asyncio.timeout(60):  # a hung shard ends the run, see run()
                    outs = await asyncio.gather(
                        *(
                            client.submit(
                                Reserve(
                                    f"{self.run_id}-h-{x}", x, 1, f"cart-{x}", f"fan-{x}", TTL_S
                                )
                            )
                            for x in part
                        )
                    )
                held_ok += sum(o.error is None for o in outs)
            recovery["held_reservations"] = held_ok

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
        await poll(lambda: not _alive(old_pid), 30.0, 0.002)

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
        results = await asyncio.gather(*tasks)
        if not first.done():
            raise RuntimeError("the shard did not come back within 120 s")
        errors = Counter(r for r in results if r is not None)
        return first.result() - t0, len(tasks), dict(errors)

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

    # -- everything ------------------------------------------------------------------------

    async def run(self) -> None:
        self.pool = make_pool(self.base.database_url, min_size=1, max_size=4, name="bench")
        await self.pool.open(wait=True)
        self.repo = InventoryRepository(self.pool)
        cfg = self.cfg
        phase_s = cfg.warmup + cfg.seconds + 90  # one measured phase, with its set-up
        phases: list[tuple[str, Callable[[], Awaitable[None]], float]] = [
            ("describe", self.describe, 60),
            ("hot SKU", self.hot_sku, 3 * len(cfg.concurrency) * phase_s),
            ("scaling", self.scaling, len(SCALE_SHARDS) * phase_s),
            ("memory and recovery", self.memory_and_recovery, 300),
        ]
        try:
            for name, phase, limit_s in phases:
                # A hung engine call (Ray retries calls to a crash-looping actor forever)
                # must end the run, with everything stopped, not stall it.
                try:
                    async with asyncio.timeout(limit_s):
                        await phase()
                except TimeoutError:
                    self.say(f"{name}: no progress within {limit_s:.0f} s; giving up")
                    raise
        finally:
            for s in list(self.running):
                with contextlib.suppress(Exception):
                    await self.stop(s)
            with contextlib.suppress(Exception):
                await self.purge_external()
            await self.pool.close()


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _filesystem(path: Path) -> str:
    best = ""
    fstype = "unknown"
    for part in psutil.disk_partitions(all=True):
        mp = part.mountpoint
        if (str(path) == mp or str(path).startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
            best, fstype = mp, part.fstype
    return f"{fstype} ({best or '?'})"


def _postmaster_pid(servers: list[Any]) -> int | None:
    for server in servers:
        pid_file = getattr(server, "pgdata", None)
        if pid_file is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                return int((pid_file / "postmaster.pid").read_text().splitlines()[0])
    return None


def _git_state() -> dict[str, Any]:
    """The commit measured, and the engine files that differ from it (measured as they are)."""
    git = shutil.which("git")
    repo = Path(__file__).resolve().parent.parent
    if git is None:
        return {}
    try:

        def run(*args: str) -> str:
            return subprocess.run(  # noqa: S603 - git with fixed arguments
                [git, "-C", str(repo), *args], capture_output=True, text=True, timeout=10
            ).stdout.rstrip("\n")

        changed = run("status", "--porcelain", "--", "matchday", "actors", "cluster")
        return {"commit": run("rev-parse", "HEAD"), "changed": changed.splitlines()}
    except (OSError, subprocess.SubprocessError):
        return {}


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


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


# -- entry point ---------------------------------------------------------------------------


def run_until_done(main: Coroutine[Any, Any, None], say: Progress) -> None:
    """``asyncio.run``, except that Ctrl-C or SIGTERM cancels ``main`` (whose ``finally``
    blocks stop what it started) and leftover tasks get 10 s, not forever, to wind down."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(main)
    interrupts = 0

    def interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            raise KeyboardInterrupt
        say("interrupted: stopping ...")
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    try:
        loop.run_until_complete(task)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        left = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in left:
            t.cancel()
        if left:
            _, stuck = loop.run_until_complete(asyncio.wait(left, timeout=10))
            for t in stuck:
                say(f"abandoned a task that ignored cancellation: {t.get_coro()!r}")
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.inventory",
        description="Benchmark the inventory engine against a PostgreSQL row lock and Redis Lua.",
    )
    p.add_argument("--seconds", type=float, default=None, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per phase")
    p.add_argument("--concurrency", type=int, nargs="+", default=[64, 16], metavar="C")
    p.add_argument("--clients", type=int, default=1, help="InventoryClients for the engine")
    p.add_argument("--quick", action="store_true", help="about a minute: the smoke test")
    p.add_argument(
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="do not refresh PostgreSQL planner statistics before engine phases",
    )
    p.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = p.parse_args(argv)
    if any(c < 1 for c in args.concurrency) or args.clients < 1:
        p.error("--concurrency and --clients must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quick = args.quick
    cfg = Config(
        seconds=args.seconds if args.seconds is not None else (2.0 if quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (0.5 if quick else 2.0),
        concurrency=args.concurrency,
        clients=args.clients,
        quick=quick,
        memory_skus=20_000 if quick else 100_000,
        held_reservations=2_000 if quick else 10_000,
        recovery_attempts=1 if quick else 3,
        analyze=args.analyze,
    )
    say = Progress()
    # A private, loopback-only cluster: both must be set before ray is imported.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    keep_ray_on_loopback()
    import ray

    db_env = os.environ.get("MATCHDAY_DATABASE_URL", "")
    redis_env = os.environ.get("MATCHDAY_REDIS_URL", "")
    tmp = Path(tempfile.mkdtemp(prefix="matchday-bench-"))
    started: list[Any] = []
    bench: Bench | None = None
    status = 1
    try:
        say(f"starting PostgreSQL and Redis in {tmp} ...")
        db_url, redis_url, started = start_servers(db_env, redis_env, tmp)
        migrate(db_url)
        run_id = uuid.uuid4().hex[:8]
        base = Settings(
            database_url=db_url,
            redis_url=redis_url,
            data_dir=tmp,
            namespace=f"matchday-bench-{run_id}",
            stream_name=f"bench:{run_id}:stream",
            availability_key=f"bench:{run_id}:availability",
        )
        say("starting Ray ...")
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            namespace=base.namespace,
            logging_level=logging.WARNING,
        )
        bench = Bench(cfg, ray, base, {"postgres": bool(db_env), "redis": bool(redis_env)}, say)
        bench.run_id = run_id
        bench.meter.postmaster = _postmaster_pid(started)
        bench.prefix = f"B{run_id}"
        run_until_done(bench.run(), say)
        status = 0
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted")
        status = 130
    except Exception:
        traceback.print_exc()
        say("FAILED: stopping everything")
        status = 1
    finally:
        with contextlib.suppress(Exception):
            if ray.is_initialized():
                ray.shutdown()
        for server in reversed(started):
            try:
                server.stop()
            except Exception as exc:
                say(f"could not stop {type(server).__name__}: {exc!r}")
        remove_tree(tmp)
        if bench is not None and bench.results:
            path = args.json or RESULTS_DIR / f"inventory-{datetime.now():%Y%m%d-%H%M%S}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            bench.results["status"] = "complete" if status == 0 else "incomplete"
            path.write_text(json.dumps(bench.results, indent=2, default=str) + "\n")
            print(f"\n{report(bench.results)}", flush=True)
            print(f"figures written to {path}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
