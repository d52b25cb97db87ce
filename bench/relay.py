"""The outbox relay's CPU per event, in one process, over real PostgreSQL and Redis.

Usage::

    python -m bench.relay                       # drain 2,000 batches, then a steady trickle
    python -m bench.relay --batches 4000 --adds-per-batch 16 --rate 50 100

The relay (``matchday.events.relay``, the ``ray:publisher`` role of ``bench.http``) turns
each committed shard batch into stream entries. Its fixed cost is per run (PostgreSQL and
Redis round trips), so its cost per event depends on how many events a run carries:

- ``drain``: a real ``ShardCore`` over ``InventoryRepository`` commits ``--batches`` batches
  of ``--adds-per-batch`` reserves on ``--skus`` SKUs while no relay runs; then the relay
  drains them with ``run_once``. Printed: the relay's CPU (this process), PostgreSQL's (every
  server process under its postmaster) and Redis's, in microseconds per reserve, and the
  runs it took; then the relay's CPU for a run that finds nothing (its idle polling).
- ``trickle``: the shard commits ``--rate`` batches per second for ``--seconds`` while the
  relay's ``run`` loop works in its own thread and event loop, as in the publisher actor;
  printed: the relay thread's CPU per reserve and the outbox rows per run (batching under
  load).

``--profile`` prints where the relay's time goes (cProfile) in both.

CPU time, not wall time, so the figures hold on a machine shared with other work.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import redis.asyncio as aioredis

from matchday.embedded import remove_tree, start_servers
from matchday.events.relay import OutboxRelay
from matchday.inventory.commands import Reserve
from matchday.inventory.records import SkuRow
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.storage.db import make_pool, migrate
from matchday.storage.inventory_repo import InventoryRepository


def server_cpu(started: list[Any]) -> float:
    """CPU seconds so far of PostgreSQL (postmaster and its children) and Redis."""
    total = 0.0
    for server in started:
        pid_file = getattr(server, "pgdata", None)
        if pid_file is not None:
            root = psutil.Process(int((pid_file / "postmaster.pid").read_text().split()[0]))
        else:
            root = psutil.Process(server.proc.pid)
        for p in [root, *root.children(recursive=True)]:
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
    return total


class Shop:
    """A shard committing reserve batches of a fixed size on a set of SKUs."""

    def __init__(self, repo: InventoryRepository, skus: int, per_batch: int) -> None:
        self.repo = repo
        self.skus = [f"RELAY-{n:05d}" for n in range(skus)]
        self.per_batch = per_batch
        self.router = Router(1)
        self.core = ShardCore(0, self.router, repo)
        self.n = 0

    async def start(self) -> None:
        await self.repo.create_skus([SkuRow(s, 10**9, 0, 0) for s in self.skus], self.router)
        await self.core.start()

    async def batch(self) -> None:
        batch = []
        for _ in range(self.per_batch):
            self.n += 1
            sku = self.skus[self.n % len(self.skus)]
            batch.append(Reserve(f"rq-{self.n}", sku, 1, f"cart-{self.n}", "fan", 600))
        await self.core.apply(batch)


async def drain(
    args: argparse.Namespace, shop: Shop, relay: OutboxRelay, started: list[Any]
) -> None:
    for _ in range(args.batches):
        await shop.batch()
    events = args.batches * args.adds_per_batch
    runs = 0
    profile = cProfile.Profile() if args.profile else None
    cpu, servers = time.process_time(), server_cpu(started)
    if profile:
        profile.enable()
    while await relay.run_once():
        runs += 1
    if profile:
        profile.disable()
    cpu, servers = time.process_time() - cpu, server_cpu(started) - servers
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    idle = time.process_time()
    for _ in range(200):
        await relay.run_once()
    idle = time.process_time() - idle
    print(
        f"drain    {events} reserves in {args.batches} batches: relay {cpu / events * 1e6:6.1f}"
        f" us/reserve, PostgreSQL+Redis {servers / events * 1e6:6.1f} us/reserve,"
        f" {runs} runs; an empty run {idle / 200 * 1e6:5.0f} us",
        flush=True,
    )


def counted(
    run_once: Callable[[], Awaitable[int]], runs: list[int]
) -> Callable[[], Awaitable[int]]:
    async def run() -> int:
        runs[0] += 1
        return await run_once()

    return run


def relay_thread(
    relay: OutboxRelay, stop: threading.Event, out: dict[str, float], profile: bool
) -> None:
    async def main() -> None:
        await relay.pool.open()
        task = asyncio.create_task(relay.run())
        start = time.thread_time()
        await asyncio.to_thread(stop.wait)
        while await relay.backlog():  # noqa: ASYNC110 - the outbox is in PostgreSQL
            await asyncio.sleep(0.05)
        out["cpu"] = time.thread_time() - start
        task.cancel()
        await relay.pool.close()
        await relay.redis.aclose()

    if not profile:
        asyncio.run(main())
        return
    prof = cProfile.Profile()
    prof.runcall(asyncio.run, main())
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


async def trickle(args: argparse.Namespace, shop: Shop, db_url: str, redis_url: str) -> None:
    for rate in args.rate:
        relay = OutboxRelay(
            make_pool(db_url, min_size=1, max_size=2, name="relay-bench", check=False),
            aioredis.Redis.from_url(redis_url),
            stream="bench:relay",
            availability_key="bench:avail",
        )
        runs = [0]
        relay.run_once = counted(relay.run_once, runs)  # type: ignore[method-assign]
        stop, out = threading.Event(), {}
        before = relay.published
        thread = threading.Thread(target=relay_thread, args=(relay, stop, out, args.profile))
        thread.start()
        await asyncio.sleep(0.5)
        deadline = time.monotonic() + args.seconds
        n = 0
        while time.monotonic() < deadline:
            await shop.batch()
            n += 1
            await asyncio.sleep(max(0.0, 1 / rate - 0.001))
        stop.set()
        await asyncio.to_thread(thread.join)
        events = n * args.adds_per_batch
        rows = relay.published - before
        print(
            f"trickle  {n / args.seconds:5.0f} batches/s x {args.adds_per_batch}: relay"
            f" {out['cpu'] / events * 1e6:6.1f} us/reserve, {rows / max(1, runs[0]):5.1f}"
            f" outbox rows per run ({runs[0]} runs, {out['cpu'] / max(1, runs[0]) * 1e6:5.0f}"
            " us each)",
            flush=True,
        )


async def main_async(
    args: argparse.Namespace, db_url: str, redis_url: str, started: list[Any]
) -> None:
    pool = make_pool(db_url, max_size=4)
    await pool.open()
    redis = aioredis.Redis.from_url(redis_url)
    try:
        repo = InventoryRepository(pool)
        shop = Shop(repo, args.skus, args.adds_per_batch)
        await shop.start()
        relay = OutboxRelay(
            make_pool(db_url, min_size=1, max_size=2, name="relay-bench", check=False),
            redis,
            stream="bench:relay",
            availability_key="bench:avail",
        )
        await relay.pool.open()
        await relay.run_once()  # the legacy table, and warm connections
        for _ in range(args.repeat):
            await drain(args, shop, relay, started)
        await relay.pool.close()
        if args.rate:
            await trickle(args, shop, db_url, redis_url)
    finally:
        await redis.aclose()
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=2_000)
    parser.add_argument("--adds-per-batch", type=int, default=8)
    parser.add_argument("--skus", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=float, nargs="*", default=[50.0, 200.0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--profile", action="store_true", help="cProfile the drain, top 25")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="matchday-relay-"))
    db_url, redis_url, started = start_servers("", "", data_dir)
    try:
        migrate(db_url)
        asyncio.run(main_async(args, db_url, redis_url, started))
    finally:
        for server in reversed(started):
            server.stop()
        remove_tree(data_dir)


if __name__ == "__main__":
    main()
