"""The conventional baseline of ``bench.http``: FastAPI + uvicorn + a PostgreSQL row lock.

    python -m bench.baseline_app --database-url URL --port 8600

One uvicorn process (uvloop, httptools), a psycopg AsyncConnectionPool of 20 connections,
and the add-to-cart route of the shop with the work a conventional shop does for it: one
transaction per request, ``UPDATE bench_http_stock SET qty = qty - $qty WHERE sku = $sku
AND qty >= $qty`` on one hot row, 201 if a row changed, else 409. No sessions, carts, rate
limit or reservation rows: the baseline is the bare row lock, so every extra the engine does
counts against it, not for it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

TABLE = "bench_http_stock"
# The baseline (DESIGN.md, 2026-11-25): a pool of 20 connections.
POOL_SIZE = 20


class AddItem(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    qty: int = Field(default=1, ge=1, le=100)


def create_table_sql() -> str:
    return f"CREATE TABLE IF NOT EXISTS {TABLE} (sku text PRIMARY KEY, qty bigint NOT NULL)"


def build(database_url: str, pool_size: int = POOL_SIZE) -> FastAPI:
    pool = AsyncConnectionPool(
        database_url, min_size=pool_size, max_size=pool_size, open=False, name="baseline"
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/api/shop/carts/{cart_id}/items", status_code=201)
    async def add_item(cart_id: str, item: AddItem) -> Any:
        async with pool.connection() as conn:  # one transaction, committed on exit
            cur = await conn.execute(
                f"UPDATE {TABLE} SET qty = qty - %s WHERE sku = %s AND qty >= %s RETURNING qty",
                (item.qty, item.sku, item.qty),
            )
            row = await cur.fetchone()
        if row is None:
            return JSONResponse({"code": "out_of_stock"}, status_code=409)
        return {"cart_id": cart_id, "sku": item.sku, "qty": item.qty, "left": row[0]}

    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool-size", type=int, default=POOL_SIZE)
    args = parser.parse_args(argv)
    uvicorn.run(
        build(args.database_url, args.pool_size),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
