"""Connections and schema migrations.

Migrations are plain numbered ``.sql`` files in ``migrations/``, applied in order, each in
its own transaction, under an advisory lock so that several processes starting at once
(shards, Serve replicas, the CLI) apply each file exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from matchday.domain.errors import Unavailable

log = logging.getLogger(__name__)

# Any constant; it only has to be the same in every process that migrates this database.
_MIGRATION_LOCK = 0x6D61746368  # "match"


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) of every migration, in order."""
    folder = resources.files("matchday.storage") / "migrations"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name, (folder / name).read_text()) for name in names]


def migrate(url: str) -> list[str]:
    """Apply the migrations this database lacks; return their names."""
    applied: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
            for name, sql in migration_files():
                if name in done:
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
                log.info("applied migration %s", name)
                applied.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    return applied


# A connection attempt that failed is retried after 1, 2, 4, ... s (psycopg_pool's backoff,
# uncapped) until this many seconds have passed, then given up; the next borrow that finds
# no connection starts a new attempt at once. With the hour this pool used before, the
# pauses grew past a minute during an outage: after a 70 s one, the first query worked 52 s
# after PostgreSQL was back, every borrow meanwhile a 503; with 5 s, 0.02-0.05 s after
# (tests/integration/test_pool_outage.py fails with the hour, passes with this).
RECONNECT_S = 5.0


class Pool(AsyncConnectionPool):
    """psycopg_pool's async pool, with a check before each lend that costs no round trip.

    ``check=True``: an empty query before each lend (psycopg_pool's ``check_connection``).
    ``check=False``: a zero-timeout poll of the connection's socket instead, no round trip:
    a borrow cost 16-18 us of this process's CPU without a check, 17-23 us with the poll and
    110-175 us with the round trip (plus the server's; /tmp bench, 20,000 borrows, machine
    shared with other test runs). A PostgreSQL that stopped, restarted or crashed closed
    its end of every idle connection (its idle backends exit when the postmaster dies, and
    say so), which makes the socket readable. Only then is a round trip paid; a dead
    connection found so also sweeps the others out of the pool (``check()``), so an outage
    costs the first borrower a short wait instead of one 503 per pooled connection. A
    connection lost without a word (a network partition, TCP only) still fails its one
    request.
    """

    def __init__(self, url: str, *, check: bool, **kwargs: Any) -> None:
        super().__init__(
            url, check=AsyncConnectionPool.check_connection if check else self._probe, **kwargs
        )
        self._sweeping: asyncio.Task[None] | None = None
        self._kept: psycopg.AsyncConnection[Any] | None = None

    async def kept(self) -> psycopg.AsyncConnection[Any]:
        """A connection lent for good, in autocommit, to a user that runs one statement at a
        time (a shard's batches): no lend, return and autocommit toggles per statement, ~2 us
        of a shard's CPU per reserve at 64 callers (issue 12). Lent afresh after
        :meth:`drop_kept` or when it broke; given back by :meth:`close`."""
        conn = self._kept
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        await self.drop_kept()
        conn = await self.getconn()
        try:
            await conn.set_autocommit(True)
        except BaseException:
            await self.putconn(conn)
            raise
        self._kept = conn
        return conn

    async def drop_kept(self) -> None:
        """Give the kept connection back: as it was lent if it is idle, else closed (a
        statement cut off mid-way leaves its answer on the wire), which the pool replaces."""
        conn, self._kept = self._kept, None
        if conn is None:
            return
        idle = not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE
        try:
            if idle:
                await conn.set_autocommit(False)
            else:
                await conn.close()
        except psycopg.Error:
            await conn.close()
        await self.putconn(conn)

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - the pool's own
        await self.drop_kept()
        await super().close(timeout)

    async def _probe(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if conn.closed:
            raise psycopg.OperationalError("the connection is closed")
        if not select.select([conn.pgconn.socket], [], [], 0)[0]:
            return  # nothing waiting: the server has not hung up
        try:
            await AsyncConnectionPool.check_connection(conn)  # a goodbye, or a notice?
        except psycopg.Error:
            if self._sweeping is None or self._sweeping.done():
                self._sweeping = asyncio.get_running_loop().create_task(self.check())
            raise


def make_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    name: str = "matchday",
    check: bool = True,
    options: str | None = None,
) -> AsyncConnectionPool:
    """An async pool, not yet opened: call ``await pool.open()`` inside the event loop.

    ``check``: a round trip before each lend (True), or only the socket poll (False, for
    hot paths); either way a PostgreSQL restart costs no stream of errors (:class:`Pool`).
    ``options``: settings each connection starts with (libpq's ``options``, ``-c k=v``).
    """
    return Pool(
        url,
        kwargs={} if options is None else {"options": options},
        check=check,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        timeout=10.0,
        reconnect_timeout=RECONNECT_S,
    )


class StorageConnection:
    """Borrow a pooled connection; a storage outage surfaces as :class:`Unavailable`.

    Every repository borrows through this, so a PostgreSQL restart reaches clients as a
    retryable 503 with a reason, never as an unhandled driver error.
    """

    def __init__(self, pool: AsyncConnectionPool, what: str) -> None:
        self._cm = pool.connection()
        self._what = what

    def _down(self, exc: BaseException) -> Unavailable:
        return Unavailable(f"{self._what} storage unavailable: {type(exc).__name__}")

    async def __aenter__(self) -> psycopg.AsyncConnection[Any]:
        try:
            return await self._cm.__aenter__()
        except Exception as exc:
            raise self._down(exc) from exc

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        _et, ev, _ = exc_info
        try:
            await self._cm.__aexit__(*exc_info)
        except psycopg.Error as exc:
            raise self._down(exc) from exc
        if isinstance(ev, psycopg.OperationalError | psycopg.InterfaceError):
            raise self._down(ev) from ev
        return None


@contextlib.asynccontextmanager
async def autocommit(
    pool: AsyncConnectionPool, what: str
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A pooled connection (:class:`StorageConnection`) in autocommit mode, for the hot paths.

    psycopg otherwise wraps every statement in BEGIN ... COMMIT, each its own round trip: a
    read cost three, where one statement is atomic on its own. A block that needs a
    transaction sends ``BEGIN`` itself (pipelined with its statements, see
    ShopRepository.create_order); one it leaves open by raising is rolled back here. The
    connection goes back to the pool as it came (not autocommit), or is closed: the pool's
    other users rely on psycopg's implicit transactions.
    """
    async with StorageConnection(pool, what) as conn:
        await conn.set_autocommit(True)
        try:
            yield conn
        finally:
            await _restore(conn)


async def _restore(conn: psycopg.AsyncConnection[Any]) -> None:
    if conn.closed or conn.broken:
        return
    try:
        if conn.pgconn.transaction_status != TransactionStatus.IDLE:
            await conn.execute("ROLLBACK")
        await conn.set_autocommit(False)
    except psycopg.Error:
        await conn.close()  # never lent again half-reset: the pool drops a closed connection
