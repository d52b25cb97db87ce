"""The shop app's own CPU per add, in one process: the replica's share without Ray or HTTP.

Usage::

    python -m bench.http_inproc                          # the app as deployed, 16 and 64 clients
    python -m bench.http_inproc --variant plain          # every add through the FastAPI route
    python -m bench.http_inproc --adds 20000 --clients 64 --repeat 5

``bench.http`` measures the shop replica over HTTP, where uvicorn, Serve's request wrapper
and the Ray actor call share the process with the app and two cores shared with other work
move its CPU per add by +-20% between runs (docs/performance.md). This isolates the app:
C asyncio tasks, each looping ``POST /api/shop/carts/{cart}/items`` with its own shopper
token and cart, call the ASGI app directly (``tests/integration/asgi_raw.call``'s scope),
over real PostgreSQL and Redis (embedded, started here). The engine is the real
``InventoryClient`` (coalescer, wire format, checks) whose ``send`` answers every reserve
``held`` after ``--engine-ms`` (default 2 ms, a shard's batch on a quiet machine), so the
figure is the replica's work minus uvicorn, Serve and Ray. CPU is this process's
(``time.process_time``) over the measured adds, after a warm-up; PostgreSQL and Redis are
other processes and not counted. Printed per variant: CPU us per add (median of
``--repeat`` rounds [min-max]), adds per engine batch, PostgreSQL reads per add.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench.http import create_hot_skus
from matchday import bootstrap
from matchday.embedded import remove_tree, start_servers
from matchday.inventory.client import InventoryClient
from matchday.inventory.commands import Outcome, ReservationView
from matchday.inventory.routing import Router
from matchday.inventory.wire import WireMutation, WireOutcome, outcome_to_wire
from matchday.settings import Settings
from matchday.storage.db import migrate
from matchday.web import shop_api
from matchday.web.context import EngineContext


def canned_engine(delay_s: float) -> tuple[Any, list[int]]:
    """A ``send`` answering every reserve as held after ``delay_s``; and its batch sizes."""
    sizes: list[int] = []

    async def send(shard_id: int, batch: list[WireMutation]) -> list[WireOutcome]:
        sizes.append(len(batch))
        await asyncio.sleep(delay_s)
        now = time.time()
        return [
            outcome_to_wire(
                Outcome(
                    value=ReservationView(
                        f"r{shard_id}.1.{m[1][-12:]}", m[2], m[3], m[4], m[5], now + m[6], "held"
                    )
                )
            )
            for m in batch
        ]

    return send, sizes


async def one_request(app: Any, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/api/shop" + path, "raw_path": ("/api/shop" + path).encode(),
        "root_path": "/api/shop", "query_string": b"", "headers": headers,
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def shopper(ctx: EngineContext) -> tuple[str, list[tuple[bytes, bytes]]]:
    customer, token = ctx.identity.new_customer()
    cart = await ctx.carts.create(customer, "bench")
    return cart.cart_id, [(b"host", b"shop"), (b"authorization", f"Bearer {token}".encode())]


async def measure(
    settings: Settings, sku: str, variant: str, clients: int, adds: int, engine_ms: float
) -> dict[str, float]:
    send, sizes = canned_engine(engine_ms / 1000)
    router = Router(settings.shards, settings.dedicated_shards)
    stock = InventoryClient(send, router, policy=settings.policy())
    ctx = bootstrap.with_engine(await bootstrap.open_shop(settings), stock)
    try:
        app = shop_api.build(ctx, lean_route=variant != "plain")
        body = f'{{"sku": "{sku}", "qty": 1}}'.encode()
        json_head = [(b"content-type", b"application/json"),
                     (b"content-length", str(len(body)).encode())]  # fmt: skip
        carts = [await shopper(ctx) for _ in range(clients)]
        done = 0
        target = 0

        async def client(cart: str, auth: list[tuple[bytes, bytes]]) -> None:
            nonlocal done
            path = f"/carts/{cart}/items"
            while done < target:
                status = await one_request(app, path, auth + json_head, body)
                assert status == 201, status
                done += 1

        target = max(clients * 4, adds // 10)  # warm-up: memos, pools, leases
        await asyncio.gather(*(client(c, a) for c, a in carts))
        reads = ctx.pool.get_stats().get("requests_num", 0)
        sizes.clear()
        done, target = 0, adds
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client(c, a) for c, a in carts))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        reads = ctx.pool.get_stats().get("requests_num", 0) - reads
        return {
            "cpu_us_per_add": cpu / done * 1e6,
            "adds_per_s": done / wall,
            "adds_per_batch": done / max(1, len(sizes)),
            "pool_borrows_per_add": reads / done,
        }
    finally:
        await ctx.close()


async def main_async(args: argparse.Namespace, settings: Settings) -> None:
    sku = f"INPROC-{int(time.time())}-M"
    await create_hot_skus(settings, [sku])
    for variant in args.variant:
        for clients in args.clients:
            rounds = [
                await measure(settings, sku, variant, clients, args.adds, args.engine_ms)
                for _ in range(args.repeat)
            ]
            cpu = sorted(r["cpu_us_per_add"] for r in rounds)
            print(
                f"{variant:6} c={clients:<3} CPU {statistics.median(cpu):6.1f} us/add "
                f"[{cpu[0]:.1f}-{cpu[-1]:.1f}]  "
                f"{statistics.median(r['adds_per_s'] for r in rounds):7.0f} adds/s  "
                f"{statistics.median(r['adds_per_batch'] for r in rounds):5.1f} adds/batch  "
                f"{statistics.median(r['pool_borrows_per_add'] for r in rounds):.3f} "
                "PostgreSQL borrows/add",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", nargs="+", default=["lean"], choices=["lean", "plain"])
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--adds", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engine-ms", type=float, default=2.0)
    parser.add_argument("--limit-s", type=float, default=600.0)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="matchday-inproc-"))
    db_url, redis_url, started = start_servers("", "", data_dir)
    try:
        migrate(db_url)
        settings = Settings(database_url=db_url, redis_url=redis_url, data_dir=data_dir,
                            rate_limit_per_s=1_000_000, rate_limit_burst=1_000_000,
                            secret_key=secrets.token_hex(24))  # fmt: skip
        try:
            asyncio.run(asyncio.wait_for(main_async(args, settings), args.limit_s))
        except BaseException:
            traceback.print_exc()
            raise
    finally:
        for server in reversed(started):
            server.stop()
        remove_tree(data_dir)


if __name__ == "__main__":
    main()
