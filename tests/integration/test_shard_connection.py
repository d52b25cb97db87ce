"""A shard writes its batches on a connection its pool keeps for it (``db.Pool.kept``).

Lending a pooled connection per batch, and switching it to autocommit and back, cost ~2 us of
the shard's CPU per reserve at 64 callers (issue 12). The kept connection must still behave
as a lent one did: the pool's other connections serve other work meanwhile, a connection
that dies fails one batch as a retryable Unavailable and is replaced, and closing the pool
closes it.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from matchday.domain.errors import Unavailable
from matchday.inventory.commands import Reserve
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.settings import Settings
from matchday.storage.db import make_pool
from matchday.storage.inventory_repo import InventoryRepository
from tests.conftest import uid
from tests.integration.test_shard_on_postgres import make_sku

pytestmark = pytest.mark.integration

ROUTER = Router(1, 1)


async def backend(repo: InventoryRepository) -> int:
    conn = await repo.pool.kept()  # type: ignore[attr-defined]
    row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
    assert row is not None
    return int(row[0])


async def sessions(settings: Settings, name: str) -> int:
    async with await admin(settings) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
        )
        row = await cur.fetchone()
        return int(row[0]) if row else -1


async def admin(settings: Settings) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)


async def test_batches_share_one_kept_connection_a_dead_one_fails_one_batch_and_close_ends_it(
    settings: Settings,
) -> None:
    name = uid("kept")
    pool = make_pool(
        settings.database_url, min_size=1, max_size=2, check=False, name=name,
        options=f"-c application_name={name}",
    )  # fmt: skip
    await pool.open(wait=True)
    repo = InventoryRepository(pool)
    try:
        sku = await make_sku(repo, 100)
        core = ShardCore(0, ROUTER, repo)
        await core.start()
        holds = [
            await core.apply([Reserve(uid("rq"), sku, 1, uid("c"), "u", 60)]) for _ in range(3)
        ]
        assert all(out.error is None for (out,) in holds)
        first = await backend(repo)
        cursor = repo._cursor
        # Every batch ran on that connection, in autocommit, through one cursor; the pool's
        # other one is free.
        (out,) = await core.apply([Reserve(uid("rq"), sku, 1, uid("c"), "u", 60)])
        assert out.error is None and await backend(repo) == first
        assert cursor is not None and repo._cursor is cursor
        assert (await pool.kept()).autocommit
        async with pool.connection() as other:
            assert not other.autocommit
            row = await (await other.execute("SELECT pg_backend_pid()")).fetchone()
            assert row is not None and row[0] != first

        # Its backend dies: that batch is refused as retryable, nothing of it is kept, and
        # the next batch, on a new connection, is applied.
        async with await admin(settings) as conn:
            await conn.execute("SELECT pg_terminate_backend(%s)", (first,))
        lost = Reserve(uid("rq"), sku, 1, uid("c"), "u", 60)
        (out,) = await core.apply([lost])
        assert out.error is not None and out.error.code == Unavailable.code
        again = Reserve(uid("rq"), sku, 1, uid("c"), "u", 60)
        (out,) = await core.apply([again])
        assert out.error is None
        assert await backend(repo) != first
        assert repo._cursor is not cursor and repo._cursor.connection is await pool.kept()
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT reserved FROM inventory WHERE sku = %s", (sku,))
            assert await cur.fetchone() == (5,)  # four holds before, one after; none lost
        assert await sessions(settings, name) == 2
    finally:
        await pool.close()
    assert await sessions(settings, name) == 0  # the kept connection went with the pool
