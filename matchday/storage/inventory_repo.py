"""All SQL of the inventory aggregate: the shard's reads and group commits, pins, seeding.

A batch is written by one statement (``inventory_batch.BATCH_SQL``) with array parameters,
so that a batch of any size costs one round trip: the hot SKU's counter row is updated once
per batch, and the journal, outbox and dedupe keys are written once per batch (ADR 0017).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from psycopg.errors import UniqueViolation
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from matchday.domain.errors import StaleEpoch, Unavailable
from matchday.inventory.changes import Reservation
from matchday.inventory.ids import request_key, reservation_id
from matchday.inventory.journal import answers
from matchday.inventory.records import BatchRefused, BatchWrite, ShardState, SkuRow
from matchday.inventory.routing import Router
from matchday.inventory.wire import RESERVATION, WireOutcome
from matchday.storage.db import Pool, StorageConnection
from matchday.storage.inventory_batch import LOOKUP_SQL, batch_sql
from matchday.storage.pg_direct import DirectStatements, StatementFailed

_SKU_COLUMNS = (
    "sku, on_hand, reserved, sold, per_customer_limit, low_stock_threshold, low_stock_order_cap"
)
_RES_COLUMNS = (
    "r.reservation_id, r.sku, r.qty, r.cart_id, r.customer_id,"
    " extract(epoch FROM r.expires_at)::float8, r.status, r.order_id, r.channel_id"
)
# A SKU is loaded by the shard recorded as its owner unless a pin sends it elsewhere; by a
# dedicated shard only while pinned to it (after an unpin its row still names it until the
# ring's owner claims the SKU, and a recovery in that window loaded a second copy).
_OWNED = (
    "i.shard_id = %(shard)s AND NOT EXISTS"
    " (SELECT 1 FROM sku_pins p WHERE p.sku = i.sku AND p.shard_id <> %(shard)s)"
)
_PINNED_HERE = " AND EXISTS (SELECT 1 FROM sku_pins p WHERE p.sku = i.sku)"


def _sku_row(row: tuple[Any, ...]) -> SkuRow:
    return SkuRow(*row)


def _reservation(row: tuple[Any, ...]) -> Reservation:
    """A shop hold's tuple has no channel element at all (``ledger.SHOP_HOLD``)."""
    return (RESERVATION, *row) if row[-1] is not None else (RESERVATION, *row[:-1])


class InventoryRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self._cursor: psycopg.AsyncCursor[Any] | None = None
        self._direct = DirectStatements()  # the batch statements, prepared on the kept conn

    # -- shard lifecycle -------------------------------------------------------------------

    async def claim_epoch(self, shard_id: int, expected: int | None = None) -> int:
        async with self._conn() as conn:
            if expected is None:
                cur = await conn.execute(
                    "INSERT INTO shard_epochs (shard_id, epoch) VALUES (%s, 1)"
                    " ON CONFLICT (shard_id) DO UPDATE"
                    " SET epoch = shard_epochs.epoch + 1, claimed_at = now() RETURNING epoch",
                    (shard_id,),
                )
            else:
                cur = await conn.execute(
                    "UPDATE shard_epochs SET epoch = epoch + 1, claimed_at = now()"
                    " WHERE shard_id = %s AND epoch = %s RETURNING epoch",
                    (shard_id, expected),
                )
            row = await cur.fetchone()
            if row is None:
                raise StaleEpoch(shard_id, expected or 0, -1)
            return int(row[0])

    async def load_shard(
        self, shard_id: int, epoch: int, *, pinned_only: bool = False
    ) -> ShardState:
        params = {"shard": shard_id}
        owned = _OWNED + _PINNED_HERE if pinned_only else _OWNED
        async with self._conn() as conn:
            return await self._load(conn, owned, params)

    async def peek_skus(self, skus: list[str]) -> dict[str, int | None]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT i.sku, p.shard_id FROM inventory i LEFT JOIN sku_pins p USING (sku)"
                " WHERE i.sku = ANY(%s::text[])",
                (skus,),
            )
            return {sku: pin for sku, pin in await cur.fetchall()}

    async def claim_skus(
        self, shard_id: int, epoch: int, pins: Mapping[str, int | None]
    ) -> ShardState:
        """Claim and load the SKUs whose pin is still the one the shard routed them by.

        The shard read the pins (``peek_skus``) before this transaction: a pin that changed
        in between, with its move's evictions already done, would have let a shard claim a
        SKU that the pin's new owner was already serving from memory, and that owner answered
        a release of the hold made here ``unknown_reservation`` (test_pinning_on_ray). The
        SKUs' rows are locked first, as ``set_pin`` locks them, so the pins are read by a
        statement that starts after any pin change in flight has committed."""
        skus = sorted(pins)
        async with self._conn() as conn, conn.transaction():
            await self._check_epoch(conn, shard_id, epoch)
            await conn.execute(
                "SELECT 1 FROM inventory WHERE sku = ANY(%s::text[]) ORDER BY sku FOR UPDATE",
                (skus,),
            )
            cur = await conn.execute(
                "SELECT sku, shard_id FROM sku_pins WHERE sku = ANY(%s::text[])", (skus,)
            )
            now: dict[str, int | None] = dict(await cur.fetchall())
            still = [s for s in skus if now.get(s) == pins[s]]
            await conn.execute(
                "UPDATE inventory SET shard_id = %s WHERE sku = ANY(%s::text[]) AND shard_id <> %s",
                (shard_id, still, shard_id),
            )
            return await self._load(conn, "i.sku = ANY(%(skus)s::text[])", {"skus": still})

    async def reload_skus(
        self, shard_id: int, skus: list[str], *, pinned_only: bool = False
    ) -> ShardState:
        params = {"shard": shard_id, "skus": skus}
        owned = _OWNED + _PINNED_HERE if pinned_only else _OWNED
        async with self._conn() as conn:
            return await self._load(conn, f"{owned} AND i.sku = ANY(%(skus)s::text[])", params)

    async def bought_units(self, skus: list[str]) -> dict[str, dict[str, int]]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT sku, customer_id, sum(qty) FROM reservations"
                " WHERE sku = ANY(%s::text[]) AND status = 'committed' GROUP BY sku, customer_id",
                (skus,),
            )
            bought: dict[str, dict[str, int]] = {}
            for sku, customer, units in await cur.fetchall():
                bought.setdefault(sku, {})[customer] = int(units)
            return bought

    async def lookup_results(self, request_ids: list[str]) -> dict[str, WireOutcome]:
        async with self._conn() as conn:
            keys = [request_key(rid) for rid in request_ids]
            holds = [reservation_id(rid) for rid in request_ids]
            cur = await conn.execute(LOOKUP_SQL, {"ids": request_ids, "keys": keys, "holds": holds})
            return answers(await cur.fetchall())

    async def write_batch(self, batch: BatchWrite) -> None:
        """One statement in its own transaction (autocommit): one round trip per batch.

        The statement checks what must hold at commit and raises inside PostgreSQL when it
        does not, which rolls everything back (see BATCH_SQL). Only dropping customer totals
        (a per-customer limit removed or set anew: rare) takes a second statement first.
        A shard writes one batch at a time, on the connection its pool keeps for it
        (``db.Pool.kept``); a connection that failed is given back and the next batch gets
        another. The statement goes through libpq directly (``pg_direct``) unless it shares
        a transaction.
        """
        sql, params = batch_sql(batch)
        try:
            cur = await self._batch_cursor()
        except Exception as exc:  # no connection to be had: PostgreSQL is down
            raise Unavailable(f"inventory storage unavailable: {type(exc).__name__}") from exc
        try:
            if batch.customers_reset:
                async with cur.connection.transaction():
                    await cur.execute(
                        "DELETE FROM customer_units WHERE sku = ANY(%s::text[])",
                        (batch.customers_reset,),
                    )
                    await cur.execute(sql, params)
            else:
                await self._direct.execute(cur.connection, sql, params)
        except StatementFailed as exc:
            if exc.sqlstate == "MD001":
                raise _refusal(batch, exc.message) from None
            if exc.sqlstate == UniqueViolation.sqlstate and exc.constraint in _DEDUPE_KEYS:
                raise BatchRefused(duplicate=True) from None  # a request id journaled before
            raise
        except psycopg.Error as exc:
            if exc.sqlstate == "MD001":
                raise _refusal(batch, exc.diag.message_primary or "") from None
            if isinstance(exc, UniqueViolation) and exc.diag.constraint_name in _DEDUPE_KEYS:
                raise BatchRefused(duplicate=True) from None  # a request id journaled before
            if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
                await self._drop_batch_connection()
                raise Unavailable(f"inventory storage unavailable: {type(exc).__name__}") from exc
            raise
        except BaseException:  # cut off mid-statement: its answer is on no one's read
            await self._drop_batch_connection()
            raise

    async def _batch_cursor(self) -> psycopg.AsyncCursor[Any]:
        """One cursor on the kept connection for every batch: a cursor per statement made
        psycopg look up the dumpers of the statement's ~45 parameters afresh each time
        (~15 us of a shard's CPU per batch, in process)."""
        if not isinstance(self.pool, Pool):
            raise TypeError("a shard's repository needs a db.Pool (db.make_pool)")
        conn = await self.pool.kept()
        cur = self._cursor
        if cur is None or cur.connection is not conn or cur.closed:
            cur = self._cursor = conn.cursor()
        return cur

    async def _drop_batch_connection(self) -> None:
        self._cursor = None
        if isinstance(self.pool, Pool):
            await self.pool.drop_kept()

    # -- operators and seeding --------------------------------------------------------------

    async def create_skus(self, rows: Iterable[SkuRow], router: Router) -> int:
        """Insert SKUs that do not exist yet, each recorded with the shard the router picks.

        The row's initial_stock (on_hand - sold) and created_at are filled in by the
        database (009_initial_stock.sql), as for the catalogue's create_product: the turnover
        report starts each SKU's level history there. They are not journaled, because
        inventory_journal holds the shards' fenced mutations, looked up by request id when
        a shard answers retries; and the shards never read these columns, so recovery is
        unchanged.
        """
        rows = list(rows)
        async with self._conn() as conn:
            cur = await conn.execute(
                f"INSERT INTO inventory (shard_id, {_SKU_COLUMNS})"
                " SELECT * FROM unnest(%s::int[], %s::text[], %s::bigint[], %s::bigint[],"
                " %s::bigint[], %s::int[], %s::int[], %s::int[])"
                " ON CONFLICT (sku) DO NOTHING",
                (
                    [router.owner(r.sku) for r in rows],
                    [r.sku for r in rows],
                    [r.on_hand for r in rows],
                    [r.reserved for r in rows],
                    [r.sold for r in rows],
                    [r.per_customer_limit for r in rows],
                    [r.low_stock_threshold for r in rows],
                    [r.low_stock_order_cap for r in rows],
                ),
            )
            return int(cur.rowcount)

    async def set_pin(self, sku: str, shard_id: int | None) -> int | None:
        """Pin (or with None unpin) a SKU; returns the shard that owned it before."""
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT shard_id FROM inventory WHERE sku = %s FOR UPDATE", (sku,)
            )
            row = await cur.fetchone()
            if row is None:
                return None
            if shard_id is None:
                await conn.execute("DELETE FROM sku_pins WHERE sku = %s", (sku,))
            else:
                await conn.execute(
                    "INSERT INTO sku_pins (sku, shard_id) VALUES (%s, %s)"
                    " ON CONFLICT (sku) DO UPDATE"
                    " SET shard_id = excluded.shard_id, pinned_at = now()",
                    (sku, shard_id),
                )
            return int(row[0])

    async def pins(self) -> dict[str, int]:
        async with self._conn() as conn:
            cur = await conn.execute("SELECT sku, shard_id FROM sku_pins")
            return {sku: shard for sku, shard in await cur.fetchall()}

    async def stock_rows(self, skus: list[str]) -> dict[str, SkuRow]:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_SKU_COLUMNS} FROM inventory WHERE sku = ANY(%s::text[])", (skus,)
            )
            return {row[0]: _sku_row(row) for row in await cur.fetchall()}

    # -- internals -------------------------------------------------------------------------

    def _conn(self) -> Any:
        return StorageConnection(self.pool, "inventory")

    @staticmethod
    async def _check_epoch(conn: psycopg.AsyncConnection[Any], shard_id: int, epoch: int) -> None:
        cur = await conn.execute(_EPOCH_SQL, (shard_id,))
        _verify_epoch(await cur.fetchone(), shard_id, epoch)

    # What a reservation row is read with, and whether channels exist (migration 015); the
    # tests' repository of an older schema turns both off.
    res_columns = _RES_COLUMNS
    with_channels = True

    async def _load(
        self, conn: psycopg.AsyncConnection[Any], where: str, params: dict[str, Any]
    ) -> ShardState:
        state = ShardState()
        cur = conn.cursor(row_factory=tuple_row)
        await cur.execute(f"SELECT {_SKU_COLUMNS} FROM inventory i WHERE {where}", params)
        state.skus = [_sku_row(r) for r in await cur.fetchall()]
        await cur.execute(
            f"SELECT {self.res_columns} FROM reservations r JOIN inventory i USING (sku)"
            f" WHERE r.status = 'held' AND {where}",
            params,
        )
        state.reservations = [_reservation(r) for r in await cur.fetchall()]
        await cur.execute(
            "SELECT c.sku, c.customer_id, c.units FROM customer_units c JOIN inventory i"
            f" USING (sku) WHERE c.units > 0 AND i.per_customer_limit IS NOT NULL AND {where}",
            params,
        )
        state.customer_units = [(s, c, u) for s, c, u in await cur.fetchall()]
        if not self.with_channels:
            return state
        await cur.execute(
            "SELECT c.sku, c.channel_id, c.max_units, c.max_percent, c.held, c.sold"
            f" FROM channel_stock c JOIN inventory i USING (sku) WHERE {where}",
            params,
        )
        state.channels = [tuple(r) for r in await cur.fetchall()]
        return state


Statement = tuple[str, tuple[Any, ...]]

# How a shard's connections start. Every statement a shard runs reads by key, recovery's
# included. psycopg prepares the batch statement on its fifth run, and PostgreSQL's generic
# plan for it, made while a new database's tables are nearly empty, scans them; the plan
# stays until autovacuum's first ANALYZE (its naptime is a minute), so each batch reads the
# whole growing reservations table (bench.inventory's first round: 1,531 scans, 19.0 million
# tuples; PostgreSQL at 76-81 us per reserve, against ~20 after it). With sequential scans
# off, the planner takes the keys whatever the tables' size.
SHARD_CONNECTION_OPTIONS = "-c enable_seqscan=off"

# A request id journaled before: a reserve's hold is keyed by it (018), any other request's
# key has its own row (010_compact_journal.sql).
_DEDUPE_KEYS = frozenset({"reservations_pkey", "inventory_requests_pkey"})

# FOR SHARE: a new owner's epoch bump waits for an in-flight batch to commit, and every batch
# after the bump sees the new epoch. A zombie can never write after a claim.
_EPOCH_SQL = "SELECT epoch FROM shard_epochs WHERE shard_id = %s FOR SHARE"


def _verify_epoch(row: tuple[Any, ...] | None, shard_id: int, epoch: int) -> None:
    current = -1 if row is None else int(row[0])
    if current != epoch:
        raise StaleEpoch(shard_id, epoch, current)


def _refusal(batch: BatchWrite, reason: str) -> Exception:
    what, _, detail = reason.partition(" ")
    if what == "stale_epoch":
        return StaleEpoch(batch.shard_id, batch.epoch, int(detail))
    if what == "cart_closed":
        return BatchRefused(json.loads(detail))
    if what in ("moved", "duplicate"):
        return BatchRefused(moved=what == "moved", duplicate=what == "duplicate")
    return Unavailable(f"inventory write refused: {reason}")
