"""The shard's batch statement sent through libpq directly (matchday/storage/pg_direct.py),
against PostgreSQL: it runs prepared once per connection (again after a DEALLOCATE), an
error comes back with its SQLSTATE and leaves the connection usable, a parameter larger
than the socket's buffer goes out whole, a backend that died is a lost connection, and a
statement cut off leaves the connection for its user to close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from matchday.settings import Settings
from matchday.storage import pg_arrays
from matchday.storage.pg_direct import DirectStatements, StatementFailed
from tests.conftest import uid

pytestmark = pytest.mark.integration


@pytest.fixture
async def conn(settings: Settings) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    c = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)
    try:
        yield c
    finally:
        await c.close()


async def table(conn: psycopg.AsyncConnection[Any]) -> str:
    name = uid("direct").replace("-", "_")
    await conn.execute(
        f"CREATE TEMP TABLE {name} (id text CONSTRAINT {name}_pk PRIMARY KEY, n bigint, at float8)"
    )
    return name


async def prepared(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    cur = await conn.execute(
        "SELECT name FROM pg_prepared_statements WHERE name LIKE 'matchday_direct_%' ORDER BY 1"
    )
    return [r[0] for r in await cur.fetchall()]


async def test_a_statement_runs_prepared_once_with_arrays_and_numbers(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    t = await table(conn)
    sql = (
        f"INSERT INTO {t} SELECT i, n + %(k)s, %(at)s FROM unnest(%(ids)b::text[],"
        " %(ns)b::bigint[]) AS v(i, n) WHERE %(k)s IS NOT NULL"
    )
    direct = DirectStatements()
    for batch in range(3):
        ids = [f"b{batch}-{i}" for i in range(50)]
        params = {"ids": pg_arrays.text(ids), "ns": pg_arrays.int8(list(range(50))),
                  "k": 10**12, "at": 1765000000.123456}  # fmt: skip
        await direct.execute(conn, sql, params)
    assert await prepared(conn) == ["matchday_direct_0"]
    cur = await conn.execute(f"SELECT count(*), min(n), max(n), min(at), max(at) FROM {t}")
    assert await cur.fetchone() == (150, 10**12, 10**12 + 49, 1765000000.123456, 1765000000.123456)
    assert conn.info.transaction_status == TransactionStatus.IDLE


async def test_an_error_names_its_sqlstate_and_constraint_and_the_connection_goes_on(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    t = await table(conn)
    direct = DirectStatements()
    insert = f"INSERT INTO {t} (id) SELECT unnest(%(ids)b::text[])"
    await direct.execute(conn, insert, {"ids": pg_arrays.text(["a"])})
    with pytest.raises(StatementFailed) as dup:
        await direct.execute(conn, insert, {"ids": pg_arrays.text(["b", "a"])})
    assert dup.value.sqlstate == "23505" and dup.value.constraint == f"{t}_pk"
    # The batch's own refusal: its SQLSTATE and its message, as the repository reads them.
    with pytest.raises(StatementFailed) as refused:
        await direct.execute(conn, "SELECT inventory_batch_refused(%(why)s::text || '')",
                             {"why": 7})  # fmt: skip
    assert refused.value.sqlstate == "MD001" and "7" in refused.value.message
    assert conn.info.transaction_status == TransactionStatus.IDLE
    await direct.execute(conn, insert, {"ids": pg_arrays.text(["b"])})  # rolled back: again
    cur = await conn.execute(f"SELECT array_agg(id ORDER BY id) FROM {t}")
    assert await cur.fetchone() == (["a", "b"],)


async def test_a_parameter_larger_than_the_socket_buffer_goes_out_whole(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    values = [f"{i:08d}-" + "x" * 90 for i in range(40_000)]  # ~4 MB
    direct = DirectStatements()
    t = await table(conn)
    await direct.execute(
        conn, f"INSERT INTO {t} (id) SELECT unnest(%(ids)b::text[])",
        {"ids": pg_arrays.text(values)},
    )  # fmt: skip
    cur = await conn.execute(f"SELECT count(*), max(id) FROM {t}")
    assert await cur.fetchone() == (40_000, values[-1])


async def test_each_connection_gets_the_statement_prepared_once(
    conn: psycopg.AsyncConnection[Any], settings: Settings
) -> None:
    direct = DirectStatements()
    sql = "SELECT %(n)s::int + 1"
    await direct.execute(conn, sql, {"n": 1})
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True
    ) as other:
        await direct.execute(other, sql, {"n": 2})
        assert await prepared(other) == ["matchday_direct_1"]
    await direct.execute(conn, sql, {"n": 3})  # back on the first: prepared there already
    assert await prepared(conn) == ["matchday_direct_0"]


async def test_statements_deallocated_behind_its_back_are_prepared_again(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    direct = DirectStatements()
    await direct.execute(conn, "SELECT %(n)s::int", {"n": 1})
    await direct.execute(conn, "SELECT %(n)s::int + 1", {"n": 1})
    await conn.execute("DEALLOCATE ALL")
    await direct.execute(conn, "SELECT %(n)s::int", {"n": 2})
    assert await prepared(conn) == ["matchday_direct_2"]
    # One deallocated, one left (_3): both are prepared again under names never used before,
    # so none meets the survivor's, which stays unused.
    await direct.execute(conn, "SELECT %(n)s::int + 1", {"n": 2})
    await conn.execute("DEALLOCATE matchday_direct_2")
    await direct.execute(conn, "SELECT %(n)s::int", {"n": 3})
    await direct.execute(conn, "SELECT %(n)s::int + 1", {"n": 3})
    assert await prepared(conn) == ["matchday_direct_3", "matchday_direct_4", "matchday_direct_5"]


async def test_a_backend_that_died_is_a_lost_connection_not_a_statement_error(
    conn: psycopg.AsyncConnection[Any], settings: Settings
) -> None:
    direct = DirectStatements()
    await direct.execute(conn, "SELECT %(n)s::int", {"n": 1})
    pid = conn.info.backend_pid
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True
    ) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    await asyncio.sleep(0.1)
    with pytest.raises(psycopg.OperationalError):
        await direct.execute(conn, "SELECT %(n)s::int", {"n": 2})


async def test_a_statement_cut_off_leaves_the_connection_busy_for_its_user_to_close(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    direct = DirectStatements()
    task = asyncio.ensure_future(direct.execute(conn, "SELECT pg_sleep(%(s)s)", {"s": 5.0}))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Its answer is still on the wire: not idle, so InventoryRepository closes it.
    assert conn.info.transaction_status != TransactionStatus.IDLE
    assert not conn.lock.locked()  # released: closing it does not wait on the statement
    await conn.close()
