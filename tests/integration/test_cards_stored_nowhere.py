"""Card numbers sent through every entry point are stored, echoed and logged nowhere (issue
13.3): URL paths, query strings, logged headers, bodies of every app, the Idempotency-Key
(accepted, never stored raw), bearer tokens, CLI arguments and admin imports.

Then PostgreSQL (every table, and the write-ahead log, which keeps what was written even if
deleted since), Redis (every key and value, and the append-only file, which keeps every
command), PostgreSQL's and Redis's logs and every Python log record are searched for each
number, compact and as sent. A PostgreSQL and a Redis of the test's own, so that their files
hold nothing but this test. (test_payments_pan.py covers checkout and webhooks.)
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from cluster import cli
from matchday.admin.stock_import import ImportRejected, StockImporter
from matchday.embedded import EmbeddedPostgres, EmbeddedRedis
from matchday.settings import Settings
from matchday.storage.admin_repo import AdminRepository
from tests.integration.test_polls_api import Polls, open_polls

pytestmark = pytest.mark.integration

PANS = ["4929032961621490", "4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005"]


def digits(pan: str) -> str:
    return pan.replace(" ", "").replace("-", "")


def forms(pan: str) -> set[bytes]:
    return {pan.encode(), digits(pan).encode()}


async def refused_calls(polls: Polls, pan: str, sku: str, cart: str) -> list[Any]:
    """Requests that must be refused: (client, method, url, kwargs)."""
    stack, admin, session = polls.admin.stack, polls.admin.http, polls.session
    auth = await stack.session()
    n = digits(pan)
    poll = (await polls.create())["poll_id"]
    csv = f"sku,action,quantity\n{sku},restock,{n}\n"
    return [
        (stack.catalog, "GET", f"/products/{n}", {}),
        (stack.catalog, "GET", "/availability", {"params": {"sku": n}}),
        (stack.catalog, "GET", "/products", {"params": {"q": pan}}),
        (stack.shop, "POST", f"/carts/c{n}/items", {"json": {"sku": sku}, "headers": auth}),
        (stack.shop, "POST", f"/carts/{cart}/items", {"json": {"sku": n}, "headers": auth}),
        (stack.shop, "PUT", f"/carts/{cart}/items/{n}", {"json": {"qty": 1}, "headers": auth}),
        (stack.shop, "DELETE", f"/carts/{cart}/items/{n}", {"headers": auth}),
        (stack.shop, "GET", f"/carts/{cart}", {"headers": {**auth, "X-Forwarded-For": pan}}),
        (stack.orders, "GET", "/", {"params": {"before": n}, "headers": auth}),
        (stack.orders, "GET", f"/o_{n}", {"headers": auth}),
        (polls.http, "GET", "/", {"params": {"placement": f"product:{n}"}}),
        (polls.http, "POST", f"/{poll}/votes", {"json": {"option_id": "o1", "note": pan},
                                                "headers": auth}),
        (admin, "POST", "/login", {"json": {"api_key": pan, "totp_code": "123456"}}),
        (admin, "GET", f"/stock/{n}", {"headers": session}),
        (admin, "PUT", f"/pins/{n}", {"headers": session}),
        (admin, "POST", "/categories", {"json": {"slug": "c", "name": f"Cat {pan}"},
                                        "headers": session}),
        (admin, "POST", "/polls", {"json": {"question": f"Card {pan}?", "placement": "checkout",
                                            "options": [{"label": "a"}, {"label": "b"}]},
                                   "headers": session}),
        (admin, "POST", "/stock/import", {"content": csv,
                                          "headers": {**session, "Content-Type": "text/csv"}}),
    ]  # fmt: skip


async def accepted_calls(polls: Polls, pan: str, sku: str) -> list[tuple[int, httpx.Response]]:
    """Requests carrying the number where it is never stored: each is served as usual."""
    stack = polls.admin.stack
    auth = await stack.session()
    cart = await stack.cart(auth)
    key = {"Idempotency-Key": digits(pan)}  # a key is opaque: tokenized, never refused
    add = f"/carts/{cart}/items"
    return [
        (201, await stack.shop.post(add, json={"sku": sku}, headers={**auth, **key})),
        (201, await stack.shop.post(add, json={"sku": sku}, headers={**auth, **key})),
        (201, await stack.shop.post("/carts", headers={**auth, "Idempotency-Key":
                                                      f"order-{digits(pan)}"})),
        (401, await stack.shop.get(f"/carts/{cart}", headers={"Authorization": f"Bearer {pan}"})),
        (200, await stack.shop.get(f"/carts/{cart}", headers={**auth, "User-Agent": pan})),
    ]  # fmt: skip


def cli_attempts(pan: str, sku: str) -> list[list[str]]:
    n = digits(pan)
    return [
        ["reserve", sku, "1", "--customer", n, "--cart", f"c{n}"],
        ["reserve", sku, "1", "--request-id", pan],
        ["restock", n, "1"],
        ["stock", sku, n],
        ["pin", n],
        ["admin", "create-key", "--name", f"terminal {pan}"],
        ["admin", "revoke", n],
    ]


async def test_card_numbers_through_every_entry_point_are_stored_and_logged_nowhere(
    settings: Settings,
    own_postgres: EmbeddedPostgres,
    own_redis: EmbeddedRedis,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []
    urls = {"database_url": own_postgres.url, "redis_url": own_redis.url}
    async with open_polls(settings, **urls) as polls:
        stack = polls.admin.stack
        (sku,) = await stack.product(stock=100)
        auth = await stack.session()
        cart = await stack.cart(auth)
        for pan in PANS:
            for client, method, url, kwargs in await refused_calls(polls, pan, sku, cart):
                r = await client.request(method, url, **kwargs)
                assert r.status_code == 422 and r.json()["code"] == "card_data_refused", (
                    method, url, r.text)  # fmt: skip
                answers.append(r.text)
            for status, r in await accepted_calls(polls, pan, sku):
                assert r.status_code == status, r.text
                answers.append(r.text)
            for argv in cli_attempts(pan, sku):
                assert cli.main(argv) == 2, argv
            assert stack.ctx.carts is not None
            importer = StockImporter(AdminRepository(stack.ctx.pool), stack.ctx.carts.stock)
            with pytest.raises(ImportRejected) as rejected:
                await importer.run(f"sku,action,quantity\n{digits(pan)},set,1\n")
            answers.append(str(rejected.value.to_dict()))
        assert await stack.stock(sku) == (100, len(PANS), 0)  # one keyed add each, replayed once
        await asyncio.sleep(1.5)  # Redis appends its AOF each loop, fsyncs every second
        found = await stored_anywhere(polls, own_postgres, own_redis)
    out = capsys.readouterr()
    texts = {"answers": "\n".join(answers), "cli": out.out + out.err, "logs": log_text(caplog)}
    for where, text in texts.items():
        found += [(where, pan) for pan in PANS if any(f.decode() in text for f in forms(pan))]
    assert found == []


async def stored_anywhere(polls: Polls, pg: EmbeddedPostgres, rd: EmbeddedRedis) -> list[Any]:
    stack = polls.admin.stack
    found: list[tuple[str, str]] = []
    async with stack.ctx.pool.connection() as conn:
        await conn.execute("CHECKPOINT")  # everything written so far is in the WAL files
        tables = await (await conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            " AND table_type = 'BASE TABLE'")).fetchall()  # fmt: skip
        assert len(tables) > 10
        for schema, table in tables:
            query = f'SELECT t::text FROM "{schema}"."{table}" t'
            rows = await (await conn.execute(query)).fetchall()
            text = "\n".join(r[0] for r in rows).encode()
            found += [(f"table {table}", p) for p in PANS if any(f in text for f in forms(p))]
    blob = await redis_dump(stack.ctx.redis)
    found += [("redis", p) for p in PANS if any(f in blob for f in forms(p))]
    files = [*(pg.pgdata / "pg_wal").glob("0*"), pg.log_file, *Path(rd.data_dir).rglob("*")]
    assert any("pg_wal" in str(f) for f in files) and any(".aof" in f.name for f in files)
    for path in files:
        if path.is_file():
            data = path.read_bytes()
            found += [(path.name, p) for p in PANS if any(f in data for f in forms(p))]
    return found


async def redis_dump(redis: Any) -> bytes:
    parts: list[bytes] = []
    async for key in redis.scan_iter(count=1000):
        parts.append(key)
        kind = (await redis.type(key)).decode()
        if kind == "none":  # it expired since the scan named it (a lease, a rate bucket)
            continue
        value: Any = {
            "string": redis.get, "hash": redis.hgetall, "set": redis.smembers,
            "list": lambda k: redis.lrange(k, 0, -1), "stream": redis.xrange,
            "zset": lambda k: redis.zrange(k, 0, -1, withscores=True),
        }[kind](key)  # fmt: skip
        parts.append(repr(await value).encode())
    assert parts
    return b"\n".join(parts)


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    # Every record but the test client's own (httpx logs the URL it requested).
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    return "\n".join(f"{r.getMessage()} {r.__dict__}" for r in server)
