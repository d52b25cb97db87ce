"""All SQL of the inventory aggregate: the shard's reads and group commits, pins, seeding.

Batches are written with array parameters (``unnest``) so that a batch of any size costs the
same handful of statements: the hot SKU's counter row is updated once per batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from matchday.domain.errors import StaleEpoch, Unavailable
from matchday.inventory.ledger import Reservation
from matchday.inventory.records import BatchWrite, ShardState, SkuRow
from matchday.inventory.routing import Router
from matchday.storage.db import StorageConnection

_SKU_COLUMNS = (
    "sku, on_hand, reserved, sold, per_customer_limit, low_stock_threshold, low_stock_order_cap"
)
_RES_COLUMNS = (
    "r.reservation_id, r.sku, r.qty, r.cart_id, r.customer_id,"
    " extract(epoch FROM r.expires_at)::float8, extract(epoch FROM r.created_at)::float8,"
    " r.status, r.order_id"
)
# A SKU is loaded by the shard recorded as its owner unless a pin sends it elsewhere.
_OWNED = (
    "i.shard_id = %(shard)s AND NOT EXISTS"
    " (SELECT 1 FROM sku_pins p WHERE p.sku = i.sku AND p.shard_id <> %(shard)s)"
)


def _sku_row(row: tuple[Any, ...]) -> SkuRow:
    return SkuRow(*row)


def _reservation(row: tuple[Any, ...]) -> Reservation:
    return Reservation(*row)


class InventoryRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

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

    async def load_shard(self, shard_id: int, epoch: int) -> ShardState:
        params = {"shard": shard_id}
        async with self._conn() as conn:
            return await self._load(conn, _OWNED, params)

    async def peek_skus(self, skus: list[str]) -> dict[str, int | None]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT i.sku, p.shard_id FROM inventory i LEFT JOIN sku_pins p USING (sku)"
                " WHERE i.sku = ANY(%s::text[])",
                (skus,),
            )
            return {sku: pin for sku, pin in await cur.fetchall()}

    async def claim_skus(self, shard_id: int, epoch: int, skus: list[str]) -> ShardState:
        async with self._conn() as conn, conn.transaction():
            await self._check_epoch(conn, shard_id, epoch)
            await conn.execute(
                "UPDATE inventory SET shard_id = %s WHERE sku = ANY(%s::text[]) AND shard_id <> %s",
                (shard_id, skus, shard_id),
            )
            return await self._load(conn, "i.sku = ANY(%(skus)s::text[])", {"skus": skus})

    async def lookup_results(self, request_ids: list[str]) -> dict[str, dict[str, Any]]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT request_id, result FROM inventory_journal"
                " WHERE request_id = ANY(%s::text[])",
                (request_ids,),
            )
            return {rid: result for rid, result in await cur.fetchall()}

    async def write_batch(self, batch: BatchWrite) -> None:
        # No pipeline mode: psycopg's pipeline stops flushing once its command queue is
        # empty, so a statement larger than the socket buffer, sent while the server was
        # not reading (a lock wait), stayed half-sent while both sides waited for the
        # other: a wide batch stalled the shard for good (issue 12). The checks run on
        # the results before COMMIT, so a failed check still rolls everything back.
        async with self._conn() as conn, conn.transaction():
            epoch = await conn.execute(_EPOCH_SQL, (batch.shard_id,))
            counters = await conn.execute(*_counters_statement(batch))
            if batch.reservations:
                await conn.execute(*_reservations_statement(batch.reservations))
            if batch.customer_units:
                skus, customers, units = zip(*batch.customer_units, strict=True)
                await conn.execute(
                    "INSERT INTO customer_units (sku, customer_id, units)"
                    " SELECT * FROM unnest(%b::text[], %b::text[], %b::int[])"
                    " ON CONFLICT (sku, customer_id) DO UPDATE SET units = excluded.units",
                    (list(skus), list(customers), list(units)),
                )
            journal = await conn.execute(*_journal_statement(batch))
            await conn.execute(*_outbox_statement(batch))
            _verify_epoch(await epoch.fetchone(), batch.shard_id, batch.epoch)
            if counters.rowcount != len(batch.counters):
                # Another shard claimed one of these SKUs (a pin moved it): this shard's
                # copy is stale. Roll back; the shard reloads what it still owns.
                raise Unavailable("a SKU moved to another shard; retry")
            if journal.rowcount != len(batch.journal):
                # A request id already journaled: the shard applied a retry as new (it came
                # after the lookup window). Roll back; the shard reloads, which re-opens the
                # window, and the client's retry then finds the first answer.
                raise Unavailable("a request id was already journaled; retry")

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

    @staticmethod
    async def _load(
        conn: psycopg.AsyncConnection[Any], where: str, params: dict[str, Any]
    ) -> ShardState:
        state = ShardState()
        cur = conn.cursor(row_factory=tuple_row)
        await cur.execute(f"SELECT {_SKU_COLUMNS} FROM inventory i WHERE {where}", params)
        state.skus = [_sku_row(r) for r in await cur.fetchall()]
        await cur.execute(
            f"SELECT {_RES_COLUMNS} FROM reservations r JOIN inventory i USING (sku)"
            f" WHERE r.status = 'held' AND {where}",
            params,
        )
        state.reservations = [_reservation(r) for r in await cur.fetchall()]
        await cur.execute(
            "SELECT c.sku, c.customer_id, c.units FROM customer_units c JOIN inventory i"
            f" USING (sku) WHERE c.units > 0 AND {where}",
            params,
        )
        state.customer_units = [(s, c, u) for s, c, u in await cur.fetchall()]
        return state


Statement = tuple[str, tuple[Any, ...]]

# FOR SHARE: a new owner's epoch bump waits for an in-flight batch to commit, and every batch
# after the bump sees the new epoch. A zombie can never write after a claim.
_EPOCH_SQL = "SELECT epoch FROM shard_epochs WHERE shard_id = %s FOR SHARE"


def _verify_epoch(row: tuple[Any, ...] | None, shard_id: int, epoch: int) -> None:
    current = -1 if row is None else int(row[0])
    if current != epoch:
        raise StaleEpoch(shard_id, epoch, current)


def _counters_statement(batch: BatchWrite) -> Statement:
    c = batch.counters
    return (
        "UPDATE inventory AS i SET on_hand = v.on_hand, reserved = v.reserved, sold = v.sold,"
        " per_customer_limit = v.pcl, low_stock_threshold = v.lst,"
        " low_stock_order_cap = v.cap, updated_at = now()"
        " FROM unnest(%b::text[], %b::bigint[], %b::bigint[], %b::bigint[], %b::int[],"
        " %b::int[], %b::int[]) AS v(sku, on_hand, reserved, sold, pcl, lst, cap)"
        " WHERE i.sku = v.sku AND i.shard_id = %s",
        (
            [r.sku for r in c],
            [r.on_hand for r in c],
            [r.reserved for r in c],
            [r.sold for r in c],
            [r.per_customer_limit for r in c],
            [r.low_stock_threshold for r in c],
            [r.low_stock_order_cap for r in c],
            batch.shard_id,
        ),
    )


def _reservations_statement(rs: list[Reservation]) -> Statement:
    return (
        "INSERT INTO reservations (reservation_id, sku, qty, cart_id, customer_id, status,"
        " order_id, created_at, expires_at, closed_at)"
        " SELECT v.id, v.sku, v.qty, v.cart, v.customer, v.status, v.order_id,"
        " to_timestamp(v.created), to_timestamp(v.expires),"
        " CASE WHEN v.status = 'held' THEN NULL ELSE now() END"
        " FROM unnest(%b::text[], %b::text[], %b::int[], %b::text[], %b::text[], %b::text[],"
        " %b::text[], %b::float8[], %b::float8[])"
        " AS v(id, sku, qty, cart, customer, status, order_id, created, expires)"
        " ON CONFLICT (reservation_id) DO UPDATE SET qty = excluded.qty, status = excluded.status,"
        " order_id = excluded.order_id, expires_at = excluded.expires_at,"
        " closed_at = excluded.closed_at",
        (
            [r.reservation_id for r in rs],
            [r.sku for r in rs],
            [r.qty for r in rs],
            [r.cart_id for r in rs],
            [r.customer_id for r in rs],
            [r.status for r in rs],
            [r.order_id for r in rs],
            [r.created_at for r in rs],
            [r.expires_at for r in rs],
        ),
    )


def _journal_statement(batch: BatchWrite) -> Statement:
    j = batch.journal
    return (
        "INSERT INTO inventory_journal"
        " (request_id, shard_id, epoch, sku, kind, mutation, result, at)"
        " SELECT v.rid, %s, %s, v.sku, v.kind, v.mutation, v.result, to_timestamp(v.at)"
        " FROM unnest(%b::text[], %b::text[], %b::text[], %b::jsonb[], %b::jsonb[],"
        " %b::float8[]) AS v(rid, sku, kind, mutation, result, at)"
        " ON CONFLICT (request_id) DO NOTHING",
        (
            batch.shard_id,
            batch.epoch,
            [r.request_id for r in j],
            [r.sku for r in j],
            [r.kind for r in j],
            [Jsonb(r.mutation) for r in j],
            [Jsonb(r.result) for r in j],
            [r.at for r in j],
        ),
    )


def _outbox_statement(batch: BatchWrite) -> Statement:
    counters = {c.sku: c for c in batch.counters}
    return (
        "INSERT INTO inventory_outbox (sku, events, on_hand, reserved, sold)"
        " SELECT * FROM unnest(%b::text[], %b::jsonb[], %b::bigint[], %b::bigint[],"
        " %b::bigint[])",
        (
            [sku for sku, _ in batch.outbox],
            [Jsonb(events) for _, events in batch.outbox],
            [counters[sku].on_hand for sku, _ in batch.outbox],
            [counters[sku].reserved for sku, _ in batch.outbox],
            [counters[sku].sold for sku, _ in batch.outbox],
        ),
    )
