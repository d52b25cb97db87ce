"""The engine's storage as it was before 010_compact_journal.sql, to fill old databases.

Migration tests need a database written the way the engine wrote it then: one journal row
per mutation with its mutation and its answer as JSONB, one outbox row per touched SKU with
its events as JSONB, customer totals for every SKU. ``LegacyRepository`` is the shard's
repository with that write path (the pre-010 SQL, from commit 7e5fae5's inventory_repo.py)
and its journal look-up: the shard core runs over it unchanged, and the rows it leaves are
those the old engine left for the same mutations (the domain logic is the same).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from matchday.domain.errors import StaleEpoch, Unavailable
from matchday.inventory.changes import reservation_view
from matchday.inventory.journal import STATUS, STOCK_KINDS, events_of
from matchday.inventory.records import BatchWrite
from matchday.inventory.wire import (
    ADJUST_LIMITS,
    COMMIT,
    EXTEND,
    KIND_NAMES,
    RESERVATION,
    RESERVE,
    RESIZE,
    RESTOCK,
    REVOKE,
    STOCK,
    WireOutcome,
)
from matchday.storage.db import migration_files
from matchday.storage.inventory_repo import InventoryRepository
from tests.conftest import uid

_EPOCH_SQL = "SELECT epoch FROM shard_epochs WHERE shard_id = %s FOR SHARE"


@contextlib.contextmanager
def database_before(server_url: str, migration: str) -> Iterator[str]:
    """A new database migrated up to, not including, ``migration`` (e.g. "010"), as a
    deployment before it left it; dropped afterwards."""
    name = uid(f"before_{migration}").replace("-", "_")
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    url = make_conninfo(server_url, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for file, text in migration_files():
                if file >= migration:
                    break
                with conn.transaction():
                    conn.execute(text.encode())
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (file,))
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


class LegacyRepository(InventoryRepository):
    # Before 015: no reservations.channel_id, no channel_stock.
    res_columns = (
        "r.reservation_id, r.sku, r.qty, r.cart_id, r.customer_id,"
        " extract(epoch FROM r.expires_at)::float8, r.status, r.order_id, NULL::text"
    )
    with_channels = False

    async def lookup_results(self, request_ids: list[str]) -> dict[str, WireOutcome]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT request_id, result FROM inventory_journal"
                " WHERE request_id = ANY(%s::text[])",
                (request_ids,),
            )
            return {rid: _from_record(result) for rid, result in await cur.fetchall()}

    async def write_batch(self, batch: BatchWrite) -> None:
        held = {r[1]: reservation_view(r) for r in (*batch.created, *batch.changed)}
        journal, outbox = _legacy_rows(batch, held)
        counters = batch.counters
        async with self.pool.connection() as conn, conn.transaction():
            row = await (await conn.execute(_EPOCH_SQL, (batch.shard_id,))).fetchone()
            if row is None or row[0] != batch.epoch:
                raise StaleEpoch(batch.shard_id, batch.epoch, -1 if row is None else row[0])
            cur = await conn.execute(
                "UPDATE inventory AS i SET on_hand = v.on_hand, reserved = v.reserved,"
                " sold = v.sold, per_customer_limit = v.pcl, low_stock_threshold = v.lst,"
                " low_stock_order_cap = v.cap, updated_at = now()"
                " FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::int[],"
                " %s::int[], %s::int[]) AS v(sku, on_hand, reserved, sold, pcl, lst, cap)"
                " WHERE i.sku = v.sku AND i.shard_id = %s",
                (
                    [c.sku for c in counters],
                    [c.on_hand for c in counters],
                    [c.reserved for c in counters],
                    [c.sold for c in counters],
                    [c.per_customer_limit for c in counters],
                    [c.low_stock_threshold for c in counters],
                    [c.low_stock_order_cap for c in counters],
                    batch.shard_id,
                ),
            )
            if cur.rowcount != len(counters):
                raise Unavailable("a SKU moved to another shard; retry")
            rs = list(held.values())
            await conn.execute(
                "INSERT INTO reservations (reservation_id, sku, qty, cart_id, customer_id,"
                " status, order_id, created_at, expires_at, closed_at)"
                " SELECT v.id, v.sku, v.qty, v.cart, v.customer, v.status, v.order_id,"
                " to_timestamp(v.created), to_timestamp(v.expires),"
                " CASE WHEN v.status = 'held' THEN NULL ELSE now() END"
                " FROM unnest(%s::text[], %s::text[], %s::int[], %s::text[], %s::text[],"
                " %s::text[], %s::text[], %s::float8[], %s::float8[])"
                " AS v(id, sku, qty, cart, customer, status, order_id, created, expires)"
                " ON CONFLICT (reservation_id) DO UPDATE SET qty = excluded.qty,"
                " status = excluded.status, order_id = excluded.order_id,"
                " expires_at = excluded.expires_at, closed_at = excluded.closed_at",
                (
                    [r.reservation_id for r in rs],
                    [r.sku for r in rs],
                    [r.qty for r in rs],
                    [r.cart_id for r in rs],
                    [r.customer_id for r in rs],
                    [r.status for r in rs],
                    [r.order_id for r in rs],
                    [batch.at] * len(rs),  # kept on conflict: the first batch's
                    [r.expires_at for r in rs],
                ),
            )
            # Every customer's total, limit or not, recounted as the old ledger kept it.
            await conn.execute(
                "INSERT INTO customer_units (sku, customer_id, units)"
                " SELECT v.sku, v.customer, coalesce(sum(r.qty) FILTER"
                " (WHERE r.status IN ('held', 'committed')), 0)"
                " FROM unnest(%s::text[], %s::text[]) AS v(sku, customer)"
                " LEFT JOIN reservations r ON r.sku = v.sku AND r.customer_id = v.customer"
                " GROUP BY v.sku, v.customer"
                " ON CONFLICT (sku, customer_id) DO UPDATE SET units = excluded.units",
                ([r.sku for r in rs], [r.customer_id for r in rs]),
            )
            cur = await conn.execute(
                "INSERT INTO inventory_journal (request_id, shard_id, epoch, sku, kind,"
                " mutation, result, at)"
                " SELECT v.rid, %s, %s, v.sku, v.kind, v.mutation, v.result, to_timestamp(%s)"
                " FROM unnest(%s::text[], %s::text[], %s::text[], %s::jsonb[], %s::jsonb[])"
                " AS v(rid, sku, kind, mutation, result) ON CONFLICT (request_id) DO NOTHING",
                (batch.shard_id, batch.epoch, batch.at, *map(list, zip(*journal, strict=True))),
            )
            if cur.rowcount != len(journal):
                raise Unavailable("a request id was already journaled; retry")
            await conn.execute(
                "INSERT INTO inventory_outbox (sku, events, on_hand, reserved, sold)"
                " SELECT * FROM unnest(%s::text[], %s::jsonb[], %s::bigint[], %s::bigint[],"
                " %s::bigint[])",
                tuple(map(list, zip(*outbox, strict=True))),
            )


def _legacy_rows(
    batch: BatchWrite, held: dict[str, Any]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The pre-010 journal rows (request_id, sku, kind, mutation, result) and outbox rows
    (sku, events, on_hand, reserved, sold) of a batch."""
    journal = []
    revoked: dict[str, list[str]] = {}
    for e in batch.entries:
        kind, rid, sku, ref, qty, _before, after, expires = e[:8]
        if kind == REVOKE:
            revoked.setdefault(rid, []).append(ref)
            continue
        if kind in STOCK_KINDS:
            on_hand, sold, pcl, lst, cap = e[8:]
            result: dict[str, Any] = {"stock": {
                "sku": sku, "on_hand": on_hand, "reserved": on_hand - sold - after,
                "sold": sold, "available": after, "per_customer_limit": pcl,
                "low_stock_threshold": lst, "low_stock_order_cap": cap,
                "revoked": revoked.get(rid, []),
            }}  # fmt: skip
            extra: dict[str, Any] = (
                {"qty": qty} if kind == RESTOCK
                else {"per_customer_limit": pcl, "low_stock_threshold": lst,
                      "low_stock_order_cap": cap} if kind == ADJUST_LIMITS
                else {"units": qty}
            )  # fmt: skip
        else:
            r = held[ref]
            order = r.order_id if kind == COMMIT else None
            result = {"reservation": {
                "reservation_id": ref, "sku": sku, "qty": qty, "cart_id": r.cart_id,
                "customer_id": r.customer_id, "expires_at": expires, "status": STATUS[kind],
                "order_id": order,
            }}  # fmt: skip
            extra = (
                {"qty": qty, "cart_id": r.cart_id, "customer_id": r.customer_id,
                 "ttl_s": expires - batch.at} if kind == RESERVE
                else {"reservation_id": ref, "order_id": order} if kind == COMMIT
                else {"reservation_id": ref, "ttl_s": expires - batch.at} if kind == EXTEND
                else {"reservation_id": ref, "qty": qty} if kind == RESIZE
                else {"reservation_id": ref}
            )  # fmt: skip
        mutation = {"request_id": rid, "sku": sku, **extra}
        journal.append((rid, sku, KIND_NAMES[kind], Jsonb(mutation), Jsonb(result)))
    carts = {ref: r.cart_id for ref, r in held.items()}
    events = events_of(batch.entries, carts, {c.sku: c.low_stock_threshold for c in batch.counters})
    outbox = [
        (c.sku, Jsonb(events.get(c.sku, [])), c.on_hand, c.reserved, c.sold) for c in batch.counters
    ]
    return journal, outbox


def _from_record(record: dict[str, Any]) -> WireOutcome:
    if "reservation" in record:
        r = record["reservation"]
        return (RESERVATION, r["reservation_id"], r["sku"], r["qty"], r["cart_id"],
                r["customer_id"], r["expires_at"], r["status"], r["order_id"])  # fmt: skip
    s = record["stock"]
    return (STOCK, s["sku"], s["on_hand"], s["reserved"], s["sold"], s["available"],
            s["per_customer_limit"], s["low_stock_threshold"], s["low_stock_order_cap"],
            tuple(s.get("revoked", ())))  # fmt: skip
