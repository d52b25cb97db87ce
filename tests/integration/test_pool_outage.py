"""The shop's PostgreSQL pools after ``kill -9`` of the postmaster: no dead connection is lent
after it is back, and borrowing works again within seconds of it, however long it was down.

Against a PostgreSQL of the test's own (tests/conftest.py), killed as the OOM killer would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from matchday.domain.errors import Unavailable
from matchday.embedded import EmbeddedPostgres
from matchday.storage.db import StorageConnection, make_pool

pytestmark = pytest.mark.integration

POOL = 4
# The window the 503s must stop in after PostgreSQL is back: the pool's longest reconnect
# pause (2 s, RECONNECT_S in matchday/storage/db.py) plus a loaded machine's margin.
RECOVERY_WINDOW_S = 10.0
# Long enough for psycopg_pool's uncapped reconnect pauses (1 s doubling, with jitter) to
# outgrow the window: its attempts come at about 0, 1, 3, 7, 15, 31 and 63 s, so after a 35 s
# outage the next one is ~28 s away, far past RECOVERY_WINDOW_S. (With its one-hour reconnect
# timeout, the first query after a 70 s outage once worked 52 s after the restart;
# matchday/storage/db.py, RECONNECT_S.)
OUTAGE_S = 35.0


def kill_postmaster(pg: EmbeddedPostgres) -> None:
    pid = pg.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while pg.alive():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def start_again(pg: EmbeddedPostgres) -> None:
    """As the supervisor does: its old backends may still hold the shared memory a moment."""
    deadline = time.monotonic() + 60
    while True:
        try:
            pg.restart()
            return
        except Exception:
            assert time.monotonic() < deadline, (pg.data_dir / "postgres.log").read_text()[-2000:]
            time.sleep(0.5)


async def query(pool: AsyncConnectionPool) -> int:
    async with StorageConnection(pool, "test") as conn:
        row = await (await conn.execute("SELECT 1")).fetchone()
        assert row is not None
        return int(row[0])


async def fill(pool: AsyncConnectionPool) -> None:
    """Make every pooled connection exist and sit idle, as in a replica between requests."""
    await pool.open(wait=True)

    async def hold(conn_ready: asyncio.Event, release: asyncio.Event) -> None:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
            conn_ready.set()
            await release.wait()

    release = asyncio.Event()
    readies = [asyncio.Event() for _ in range(POOL)]
    holders = [asyncio.create_task(hold(r, release)) for r in readies]
    await asyncio.gather(*(r.wait() for r in readies))
    release.set()
    await asyncio.gather(*holders)
    assert pool.get_stats()["pool_available"] == POOL


async def outcomes(pool: AsyncConnectionPool, n: int) -> list[Any]:
    results: list[Any] = []
    for _ in range(n):
        try:
            results.append(await query(pool))
        except Unavailable as exc:
            results.append(exc)
    return results


async def killed_and_back(pool: AsyncConnectionPool, pg: EmbeddedPostgres) -> None:
    """Every pooled connection idle and open, then PostgreSQL killed and started again."""
    await fill(pool)
    await asyncio.to_thread(kill_postmaster, pg)
    await asyncio.to_thread(start_again, pg)


async def test_idle_connections_killed_with_postgres_are_never_lent(
    own_postgres: EmbeddedPostgres,
) -> None:
    pool = make_pool(own_postgres.url, min_size=POOL, max_size=POOL, check=False)
    try:
        await killed_and_back(pool, own_postgres)
        started = time.monotonic()
        assert await outcomes(pool, 2 * POOL) == [1] * (2 * POOL)
        print(f"first {2 * POOL} queries after the restart: {time.monotonic() - started:.2f} s")
    finally:
        await pool.close()


async def test_without_the_socket_check_each_dead_connection_fails_a_request(
    own_postgres: EmbeddedPostgres,
) -> None:
    """What the check above prevents (and proof that the test reaches the dead connections):
    psycopg_pool without a check lends each dead connection once."""
    pool: AsyncConnectionPool = AsyncConnectionPool(
        own_postgres.url, min_size=POOL, max_size=POOL, open=False, timeout=10.0
    )
    try:
        await killed_and_back(pool, own_postgres)
        results = await outcomes(pool, 2 * POOL)
        assert sum(isinstance(r, Unavailable) for r in results) >= 1, results
    finally:
        await pool.close()


async def test_after_a_long_outage_borrowing_works_again_within_seconds(
    own_postgres: EmbeddedPostgres,
) -> None:
    pool = make_pool(own_postgres.url, min_size=POOL, max_size=POOL, check=False)
    try:
        await fill(pool)
        await asyncio.to_thread(kill_postmaster, own_postgres)
        # Shoppers keep asking while it is down (each waits out the pool's timeout at most):
        # the pool's reconnect attempts pile up their pauses meanwhile.
        down_until = time.monotonic() + OUTAGE_S
        tries = 0
        while time.monotonic() < down_until:
            assert isinstance((await outcomes(pool, 1))[0], Unavailable)
            tries += 1
        await asyncio.to_thread(start_again, own_postgres)
        up = time.monotonic()
        while isinstance((await outcomes(pool, 1))[0], Unavailable):
            assert time.monotonic() - up < RECOVERY_WINDOW_S, "still refused after recovery"
        took = time.monotonic() - up
        assert await outcomes(pool, POOL) == [1] * POOL
        print(f"{tries} refused during the outage; the first query worked {took:.2f} s after")
    finally:
        await pool.close()
