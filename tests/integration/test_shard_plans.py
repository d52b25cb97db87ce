"""A shard's batch statement reads by key on a young database (bench.inventory's first round).

psycopg prepares the statement on its fifth run; planned while a new shop's tables hold a
handful of rows, it scanned them, and the plan stayed until autovacuum's first ANALYZE while
each batch read the whole growing reservations table (1,531 scans, 19.0 million tuples in
one 12 s phase). The shard's connections start with sequential scans off
(``SHARD_CONNECTION_OPTIONS``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from matchday.bootstrap.engine import open_shard_core
from matchday.inventory.commands import Reserve
from matchday.inventory.records import BatchWrite, SkuRow
from matchday.settings import Settings
from matchday.storage.inventory_batch import batch_sql
from tests.conftest import uid
from tests.integration.legacy_engine import database_before

pytestmark = pytest.mark.integration


@pytest.fixture
def young_db(settings: Settings) -> Iterator[str]:
    with database_before(settings.database_url, "999") as url:  # every migration
        yield url


# The plan the prepared statement settles on: the generic one (psycopg prepares it on its
# fifth run, and PostgreSQL keeps a generic plan that costs no more than the custom ones).
GENERIC = "SET plan_cache_mode = force_generic_plan"


def scans(conn: Any, sql: str, params: dict[str, Any]) -> list[str]:
    conn.execute(GENERIC)
    plan = [r[0] for r in conn.execute("EXPLAIN " + sql, params).fetchall()]
    return [line.strip() for line in plan if "Seq Scan" in line]


async def test_a_young_databases_batch_statement_reads_by_key(
    settings: Settings, young_db: str
) -> None:
    core = await open_shard_core(
        settings.model_copy(update={"database_url": young_db}), 0, pool_name="plans"
    )
    try:
        await core.start()
        sku = next(s for s in (uid("SKU") for _ in range(1000)) if core.router.owner(s) == 0)
        await core.repo.create_skus([SkuRow(sku, 1000, 0, 0)], core.router)  # type: ignore[attr-defined]
        written: list[BatchWrite] = []
        write = core.repo.write_batch

        async def keep(batch: BatchWrite) -> None:
            written.append(batch)
            await write(batch)

        core.repo.write_batch = keep  # type: ignore[method-assign]
        for _ in range(6):  # past psycopg's prepare threshold, on tables of a few rows
            outs = await core.apply([Reserve(uid("rq"), sku, 1, uid("c"), "u", 60)])
            assert outs[0].error is None
        # A batch as a surge makes them: 64 holds for 64 carts.
        outs = await core.apply([Reserve(uid("rq"), sku, 1, uid("c"), "u", 60) for _ in range(64)])
        assert all(o.error is None for o in outs)
        sql, params = batch_sql(written[-1])

        async with core.repo.pool.connection() as conn:  # type: ignore[attr-defined]
            cur = await conn.execute("SHOW enable_seqscan")
            assert await cur.fetchone() == ("off",)
            await conn.execute(GENERIC)
            plan = [r[0] for r in await (await conn.execute("EXPLAIN " + sql, params)).fetchall()]
            await conn.execute("RESET plan_cache_mode")
        assert [line for line in plan if "Seq Scan" in line] == []
        # The same statement on a connection as any other pool opens it does scan: what the
        # setting changes, on tables this small.
        with psycopg.connect(young_db) as plain:
            assert scans(plain, sql, params) != []
    finally:
        await core.repo.pool.close()  # type: ignore[attr-defined]
