"""Connections and schema migrations.

Migrations are plain numbered ``.sql`` files in ``migrations/``, applied in order, each in
its own transaction, under an advisory lock so that several processes starting at once
(shards, Serve replicas, the CLI) apply each file exactly once.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import psycopg
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


def make_pool(
    url: str, *, min_size: int = 1, max_size: int = 4, name: str = "matchday", check: bool = True
) -> AsyncConnectionPool:
    """An async pool, not yet opened: call ``await pool.open()`` inside the event loop.

    ``check`` makes the pool test a connection before lending it, so a PostgreSQL restart
    costs one failed batch at most instead of a stream of errors on dead connections.
    """
    return AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        check=AsyncConnectionPool.check_connection if check else None,
        timeout=10.0,
        reconnect_timeout=3600.0,
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
