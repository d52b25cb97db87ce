"""A large batch's journal arrays are stored out of line uncompressed (020, ADR 0036).

pglz compressed every batch row past 8,160 bytes before moving it out of line: 14% of
PostgreSQL's CPU at 256 callers, mostly spent on random ids it could not shrink. Since 020
only ``skus`` is compressed (a hot batch repeats one SKU). A batch written before 020 keeps
its compressed arrays, and both read back entry for entry, through the journal and through
a retried reserve's look-up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from matchday.inventory.commands import Outcome, Reserve
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.settings import Settings
from matchday.storage.db import make_pool, migrate
from matchday.storage.inventory_repo import InventoryRepository
from tests.integration.legacy_engine import database_before
from tests.integration.test_shard_on_postgres import make_sku, reserve

pytestmark = pytest.mark.integration

ROUTER = Router(1, 1)
# Past toast_tuple_target (8,160 bytes) with room to spare: ~100 bytes an entry.
HOLDS = 200
COLUMNS = ("kinds", "request_ids", "refs", "qtys", "avail_before", "avail_after", "expires")
COLUMNS += ("on_hand", "sold", "pcl", "lst", "cap", "carts")


@pytest.fixture
async def before_020(settings: Settings) -> AsyncIterator[tuple[str, InventoryRepository]]:
    with database_before(settings.database_url, "020") as url:
        pool = make_pool(url, name="journal-storage")
        await pool.open(wait=True)
        try:
            yield url, InventoryRepository(pool)
        finally:
            await pool.close()


async def fetch(repo: InventoryRepository, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async with repo.pool.connection() as conn:
        return list(await (await conn.execute(sql, args)).fetchall())


async def big_batch(core: ShardCore, sku: str) -> tuple[list[Reserve], list[Outcome]]:
    ms = [reserve(sku) for _ in range(HOLDS)]
    outs = await core.apply(ms)
    assert all(o.error is None for o in outs)
    return ms, outs


async def compression(repo: InventoryRepository, request_id: str) -> dict[str, str | None]:
    """Each array's compression method in the batch that journaled ``request_id``."""
    cols = ", ".join(f"pg_column_compression({c})" for c in ("skus", *COLUMNS))
    (row,) = await fetch(
        repo,
        f"SELECT {cols} FROM inventory_batches WHERE %s = ANY(request_ids)",
        request_id,
    )
    return dict(zip(("skus", *COLUMNS), row, strict=True))


async def journaled(repo: InventoryRepository, ms: list[Reserve]) -> list[tuple[Any, ...]]:
    rows = await fetch(
        repo,
        "SELECT request_id, sku, kind, qty, available_after FROM inventory_journal"
        " WHERE request_id = ANY(%s) ORDER BY seq",
        [m.request_id for m in ms],
    )
    return rows


async def test_a_large_batch_is_journaled_uncompressed_and_an_older_one_reads_the_same(
    before_020: tuple[str, InventoryRepository],
) -> None:
    url, repo = before_020
    sku = await make_sku(repo, 10 * HOLDS)
    core = ShardCore(0, ROUTER, repo)
    await core.start()
    old, old_outs = await big_batch(core, sku)
    # Before 020 pglz shrank the arrays it could: the quantities (all 1) among them.
    assert (await compression(repo, old[0].request_id))["qtys"] == "pglz"

    assert migrate(url)[0] == "020_journal_arrays_uncompressed.sql"
    new, new_outs = await big_batch(core, sku)
    methods = await compression(repo, new[0].request_id)
    assert methods == {"skus": "pglz", **dict.fromkeys(COLUMNS)}

    # Both batches read back entry for entry: the journal's view ...
    for ms, start in ((old, 10 * HOLDS), (new, 9 * HOLDS)):
        rows = await journaled(repo, ms)
        want = [(m.request_id, sku, "reserve", 1, start - i - 1) for i, m in enumerate(ms)]
        assert rows == want
    # ... and a restarted shard's look-up, which answers retries of both from their arrays.
    again = ShardCore(0, ROUTER, repo)
    await again.start()
    retried = await again.apply([old[7], new[7], old[-1], new[-1]])
    assert retried == [old_outs[7], new_outs[7], old_outs[-1], new_outs[-1]]
    assert (await fetch(repo, "SELECT reserved FROM inventory WHERE sku = %s", sku)) == [
        (2 * HOLDS,)
    ]
