"""A shard's batch statement, prepared once per connection and sent through libpq directly.

psycopg's ``cursor.execute`` looks up a dumper for each of the ~35 parameters, keeps its own
cache of prepared statements, converts the placeholders and waits through a generator. For
the one statement a shard runs per batch, with parameters that are already bytes
(``pg_arrays``), that cost ~120 us of the shard's CPU a batch at one reserve a batch (py-spy,
2026-12-05), and ~50 us more a batch than this module in process (64 holds a batch, 2,000
batches, both ways in one run).

Here each statement is prepared on the connection under a name of its own, its parameters go
out in the order of its ``$n`` (arrays in binary, numbers as text, typed by PostgreSQL from
the statement), and the event loop is asked to wake on the socket only while a result is
awaited, as psycopg does. Only what a batch needs: one statement in autocommit whose result
is checked, not read. An error result raises :class:`StatementFailed`; a lost connection
raises psycopg's ``OperationalError`` from libpq's wrapper, as psycopg would.

The connection is psycopg's (``conn.pgconn``, its public libpq wrapper), held under its lock,
and left idle after every statement; a statement cut off half-way leaves it busy, and its
user must close it (``InventoryRepository._drop_batch_connection``).
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterator, Mapping
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
from psycopg import pq

from matchday.storage.pg_arrays import PgArray

_PLACEHOLDER = re.compile(r"%\((\w+)\)([sb])")
_TEXT, _BINARY = 0, 1
_NOT_PREPARED = "26000"  # invalid_sql_statement_name: no prepared statement by that name


class StatementFailed(Exception):
    """PostgreSQL answered the statement with an error (it rolled back)."""

    def __init__(self, sqlstate: str, message: str, constraint: str | None) -> None:
        super().__init__(f"{sqlstate}: {message}")
        self.sqlstate = sqlstate
        self.message = message
        self.constraint = constraint


def to_dollars(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """``sql`` with psycopg's named placeholders as ``$n`` (a name used twice is one
    parameter, as psycopg does), and the names in ``$n`` order."""
    order: dict[str, int] = {}

    def number(m: re.Match[str]) -> str:
        return f"${order.setdefault(m.group(1), len(order) + 1)}"

    query = _PLACEHOLDER.sub(number, sql)
    if "%" in query:
        raise ValueError("a literal % or another placeholder form is not supported here")
    return query.encode(), tuple(order)


def _value(v: Any) -> bytes | None:
    if v is None or isinstance(v, bytes):
        return v
    if type(v) is int or type(v) is float:
        return repr(v).encode()  # the shortest text that reads back as the same number
    raise TypeError(f"no direct encoding for a {type(v).__name__} parameter")


class DirectStatements:
    """The statements prepared on each connection, for as long as the connection lives."""

    def __init__(self) -> None:
        self._prepared: WeakKeyDictionary[
            psycopg.AsyncConnection[Any], dict[str, tuple[bytes, tuple[str, ...]]]
        ] = WeakKeyDictionary()
        # Names are never reused: after a DEALLOCATE of some statements, one prepared again
        # cannot meet a survivor's name.
        self._names = itertools.count()

    async def execute(
        self, conn: psycopg.AsyncConnection[Any], sql: str, params: Mapping[str, Any]
    ) -> None:
        """Run ``sql`` with ``params`` on ``conn`` (in autocommit) and drop its result."""
        async with conn.lock:
            on_conn = self._prepared.setdefault(conn, {})
            try:
                await _execute(conn.pgconn, on_conn, sql, params, self._names)
            except StatementFailed as exc:
                if exc.sqlstate != _NOT_PREPARED:
                    raise
                # The session's statements were deallocated (DEALLOCATE or DISCARD ALL run
                # on it by someone else): prepare them again as they are used.
                on_conn.clear()
                await _execute(conn.pgconn, on_conn, sql, params, self._names)


async def _execute(
    pgconn: pq.abc.PGconn,
    prepared: dict[str, tuple[bytes, tuple[str, ...]]],
    sql: str,
    params: Mapping[str, Any],
    numbers: Iterator[int],
) -> None:
    found = prepared.get(sql)
    if found is None:
        query, names = to_dollars(sql)
        name = b"matchday_direct_%d" % next(numbers)
        pgconn.send_prepare(name, query, None)
        await _result(pgconn)
        found = prepared[sql] = (name, names)
    name, names = found
    values = [_value(params[n]) for n in names]
    formats = [_BINARY if isinstance(params[n], PgArray) else _TEXT for n in names]
    pgconn.send_query_prepared(name, values, formats, _TEXT)
    await _result(pgconn)


async def _result(pgconn: pq.abc.PGconn) -> None:
    """Send what libpq holds, wait for every result of the statement, raise on an error."""
    loop = asyncio.get_running_loop()
    fd = pgconn.socket
    while pgconn.flush():  # a batch larger than the socket's buffer: wait until it drains
        await _ready(loop, fd, writing=True)
    failed: StatementFailed | None = None
    while True:
        while pgconn.is_busy():
            await _ready(loop, fd, writing=False)
            pgconn.consume_input()
        res = pgconn.get_result()
        if res is None:
            break
        if res.status == pq.ExecStatus.FATAL_ERROR and failed is None:
            failed = _failure(res)
    if pgconn.status != pq.ConnStatus.OK:
        # The backend ended (terminated, shut down): its last word may be an error result,
        # but what the caller must hear is that this connection is gone.
        raise psycopg.OperationalError(f"the connection is lost: {failed or 'no error'}")
    if failed is not None:
        raise failed


def _failure(res: pq.abc.PGresult) -> StatementFailed:
    def field(code: pq.DiagnosticField) -> str | None:
        raw = res.error_field(code)
        return None if raw is None else raw.decode("utf-8", "replace")

    return StatementFailed(
        field(pq.DiagnosticField.SQLSTATE) or "",
        field(pq.DiagnosticField.MESSAGE_PRIMARY) or "",
        field(pq.DiagnosticField.CONSTRAINT_NAME),
    )


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, *, writing: bool) -> None:
    done: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not done.done():
            done.set_result(None)

    (loop.add_writer if writing else loop.add_reader)(fd, wake)
    try:
        await done
    finally:
        (loop.remove_writer if writing else loop.remove_reader)(fd)
