"""The SQL of a shard's group commit, and of a retried request's journal look-up.

A batch is one statement, so one round trip and one implicit transaction: its data-changing
CTEs write the counters, the reservations (inserted when new, updated when changed), the
customer totals of SKUs with a per-customer limit, one journal row (the batch's entries as
parallel arrays), one dedupe key per request id that is not a reserve's and one outbox
row. The outbox row takes the counters from the parameters the counters' UPDATE sets them
to: a batch whose UPDATE missed a SKU is refused below, so the two never differ, and the row
needs no aggregate over the UPDATE's output. Its final SELECT checks what must hold at
commit and, if anything does not, calls ``inventory_batch_refused``, whose error rolls the
whole statement back (010_compact_journal.sql):

- the shard's epoch is still ours (FOR SHARE: a successor's claim waits for this batch, and
  this batch sees a claim that committed first);
- every cart the batch takes more units for is still open (FOR SHARE on its carts row:
  checkout's UPDATE of the row waits for this batch, so it then sees its holds; or this
  batch waits for checkout, then sees the cart closed);
- every SKU is still owned by this shard (its counters row was updated), and every new
  reservation's SKU is one of them: the batch, not a foreign key, keeps a hold's SKU real
  (017_reservations_sku_checked_by_the_batch.sql);
- no request id was journaled before (ADR 0034). A reserve's hold id is derived from its
  request id, so a retried reserve fails the hold's insert; any other request's key
  (``ids.request_key``, sent by the shard) fails its insert when stored already. Either is
  a unique violation (``reservations_pkey``, ``inventory_requests_pkey``) that the
  repository reads as the same 'duplicate' refusal: no ``ON CONFLICT``, whose speculative
  insertion cost 8-12% of PostgreSQL's CPU per batch. Two ids of one batch on one key leave
  fewer keys than requests. A request id reused for another kind is found by probing the
  other index: a reserve's key among the stored keys, another request's derived hold id
  among the holds.
- the batch's id is drawn first (``bid``) so that its new holds can name it: a retried
  reserve is answered from that batch's entry.

A batch of new holds only, the shop's adds under load, runs ``BATCH_SQL_HOLDS``: the same
statement without the CTEs and checks it would leave empty (``_holds_only``).

No pipeline mode: psycopg's pipeline stopped flushing a large batch halfway (issue 12).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from itertools import zip_longest
from typing import Any

from matchday.inventory.changes import (
    R_CART,
    R_CHANNEL,
    R_CUSTOMER,
    R_EXPIRES,
    R_ID,
    R_ORDER,
    R_QTY,
    R_SKU,
    R_STATUS,
)
from matchday.inventory.ids import key_hex, request_key, reservation_id
from matchday.inventory.records import BatchWrite
from matchday.storage.pg_arrays import PgArray, float8, int2, int4, int8, int8_hex, text

BATCH_SQL = """
WITH bid AS (
    SELECT nextval('inventory_batches_id_seq') AS id
), ep AS (
    SELECT epoch FROM shard_epochs WHERE shard_id = %(shard)s FOR SHARE
), carts_now AS (
    SELECT cart_id, status FROM carts WHERE cart_id = ANY(%(carts)b::text[]) FOR SHARE
), c AS (
    UPDATE inventory AS i SET on_hand = v.on_hand, reserved = v.reserved, sold = v.sold,
        per_customer_limit = v.pcl, low_stock_threshold = v.lst, low_stock_order_cap = v.cap,
        updated_at = now()
    FROM unnest(%(c_sku)b::text[], %(c_on_hand)b::bigint[], %(c_reserved)b::bigint[],
                %(c_sold)b::bigint[], %(c_pcl)b::int[], %(c_lst)b::int[], %(c_cap)b::int[])
        AS v(sku, on_hand, reserved, sold, pcl, lst, cap)
    WHERE i.sku = v.sku AND i.shard_id = %(shard)s
    RETURNING i.sku, i.on_hand, i.reserved, i.sold
), rn AS (
    INSERT INTO reservations (batch, reservation_id, sku, qty, cart_id, customer_id, status,
        order_id, created_at, expires_at, closed_at)
    SELECT (SELECT id FROM bid), v.id, v.sku, v.qty, v.cart, v.customer, v.status, v.order_id,
        to_timestamp(v.created), to_timestamp(v.expires),
        CASE WHEN v.status = 'held' THEN NULL ELSE now() END
    FROM unnest(%(rn_id)b::text[], %(rn_sku)b::text[], %(rn_qty)b::int[], %(rn_cart)b::text[],
                %(rn_customer)b::text[], %(rn_status)b::text[], %(rn_order)b::text[],
                %(rn_created)b::float8[], %(rn_expires)b::float8[])
        AS v(id, sku, qty, cart, customer, status, order_id, created, expires)
    RETURNING sku
), ru AS (
    UPDATE reservations AS r SET qty = v.qty, status = v.status, order_id = v.order_id,
        expires_at = to_timestamp(v.expires),
        closed_at = CASE WHEN v.status = 'held' THEN NULL ELSE now() END
    FROM unnest(%(ru_id)b::text[], %(ru_qty)b::int[], %(ru_status)b::text[],
                %(ru_order)b::text[], %(ru_expires)b::float8[])
        AS v(id, qty, status, order_id, expires)
    WHERE r.reservation_id = v.id
    RETURNING 1
), cu AS (
    INSERT INTO customer_units (sku, customer_id, units)
    SELECT * FROM unnest(%(cu_sku)b::text[], %(cu_customer)b::text[], %(cu_units)b::int[])
    ON CONFLICT (sku, customer_id) DO UPDATE SET units = excluded.units
    RETURNING 1
), j AS (
    INSERT INTO inventory_batches (id, shard_id, epoch, at, kinds, request_ids, skus, refs,
        qtys, avail_before, avail_after, expires, on_hand, sold, pcl, lst, cap, carts)
    VALUES ((SELECT id FROM bid), %(shard)s, %(epoch)s, to_timestamp(%(at)s), %(kinds)b::smallint[],
        %(rids)b::text[], %(skus)b::text[], %(refs)b::text[], %(qtys)b::bigint[],
        %(before)b::bigint[], %(after)b::bigint[], %(expires)b::float8[],
        %(on_hand)b::bigint[], %(sold)b::bigint[], %(pcl)b::int[], %(lst)b::int[],
        %(cap)b::int[], %(e_carts)b::text[])
    RETURNING id
), d AS (
    INSERT INTO inventory_requests (key, batch)
    SELECT DISTINCT k, (SELECT id FROM bid) FROM unnest(%(keys)b::bigint[]) AS k
    RETURNING 1
), o AS (
    INSERT INTO inventory_outbox (batch, skus, on_hand, reserved, sold)
    VALUES ((SELECT id FROM bid), %(c_sku)b::text[], %(c_on_hand)b::bigint[],
        %(c_reserved)b::bigint[], %(c_sold)b::bigint[])
    RETURNING 1
)
SELECT CASE
    WHEN (SELECT epoch FROM ep) IS DISTINCT FROM %(epoch)s THEN inventory_batch_refused(
        'stale_epoch ' || coalesce((SELECT epoch FROM ep), -1))
    WHEN EXISTS (SELECT 1 FROM carts_now WHERE status <> 'open') THEN inventory_batch_refused(
        'cart_closed ' || (SELECT json_object_agg(cart_id, status) FROM carts_now
                           WHERE status <> 'open'))
    WHEN (SELECT count(*) FROM c) <> %(n_counters)s THEN inventory_batch_refused('moved')
    WHEN EXISTS (SELECT 1 FROM rn WHERE rn.sku NOT IN (SELECT sku FROM c))
        THEN inventory_batch_refused('unknown_sku a new reservation names a SKU not counted')
    WHEN (SELECT count(*) FROM d) <> %(n_requests)s
        OR EXISTS (SELECT 1 FROM inventory_requests WHERE key = ANY(%(hold_keys)b::bigint[]))
        OR EXISTS (SELECT 1 FROM reservations WHERE reservation_id = ANY(%(key_holds)b::text[]))
        THEN inventory_batch_refused('duplicate')
    WHEN (SELECT count(*) FROM ru) <> %(n_changed)s
        THEN inventory_batch_refused('a changed reservation has no row')
    END,
    (SELECT count(*) FROM rn), (SELECT count(*) FROM cu), (SELECT count(*) FROM o)
"""

# For each of ``ids`` that is journaled, by its key (``keys``) or as the creator of its
# derived hold (``holds``, ADR 0034): its entries (several for a count that revoked holds)
# joined with their reservations, in journal order, as rows for
# ``matchday.inventory.journal.answers``; or, when the key or the hold belongs to another
# request id (a 64-bit collision), one row with that id and nothing else.
LOOKUP_SQL = """
WITH asked AS (
    SELECT * FROM unnest(%(ids)s::text[], %(keys)s::bigint[], %(holds)s::text[])
        AS x(asked, key, hold)
), hits AS (
    SELECT a.asked, q.batch FROM asked a JOIN inventory_requests q ON q.key = a.key
    UNION
    SELECT a.asked, r.batch FROM asked a JOIN reservations r ON r.reservation_id = a.hold
    WHERE r.batch IS NOT NULL
)
SELECT h.asked, e.kind, e.sku, e.ref, e.qty, e.after, e.expires, e.on_hand, e.sold, e.pcl,
    e.lst, e.cap, r.cart_id, r.customer_id, r.order_id
FROM hits h
JOIN inventory_batches b ON b.id = h.batch
LEFT JOIN LATERAL (
    SELECT * FROM unnest(b.kinds, b.request_ids, b.skus, b.refs, b.qtys, b.avail_after,
                         b.expires, b.on_hand, b.sold, b.pcl, b.lst, b.cap)
        WITH ORDINALITY AS u(kind, rid, sku, ref, qty, after, expires, on_hand, sold, pcl,
                             lst, cap, pos)
    WHERE u.rid = h.asked
) e ON true
LEFT JOIN reservations r ON r.reservation_id = e.ref
ORDER BY b.id, e.pos
"""
LOOKUP_SQL = LOOKUP_SQL.replace("r.order_id\nFROM hits", "r.order_id, r.channel_id\nFROM hits")
assert "r.channel_id" in LOOKUP_SQL

# A batch that touched a channel's share of a SKU (ADR 0028) writes it too, and the channel
# of every reservation it inserts. The shop's batches keep BATCH_SQL: they pay nothing for
# channels (the same statement, the same parameters as before 015).
BATCH_SQL_CHANNELS = (
    BATCH_SQL.replace(
        """        order_id, created_at, expires_at, closed_at)
    SELECT (SELECT id FROM bid),""",
        """        order_id, created_at, expires_at, closed_at, channel_id)
    SELECT (SELECT id FROM bid),""",
    )
    .replace(
        """        CASE WHEN v.status = 'held' THEN NULL ELSE now() END
    FROM unnest(%(rn_id)b::text[],""",
        """        CASE WHEN v.status = 'held' THEN NULL ELSE now() END, v.channel
    FROM unnest(%(rn_id)b::text[],""",
    )
    .replace(
        """                %(rn_created)b::float8[], %(rn_expires)b::float8[])
        AS v(id, sku, qty, cart, customer, status, order_id, created, expires)""",
        """                %(rn_created)b::float8[], %(rn_expires)b::float8[],
                %(rn_channel)b::text[])
        AS v(id, sku, qty, cart, customer, status, order_id, created, expires, channel)""",
    )
    .replace(
        """), j AS (""",
        """), cs AS (
    INSERT INTO channel_stock (sku, channel_id, max_units, max_percent, held, sold)
    SELECT * FROM unnest(%(cs_sku)b::text[], %(cs_channel)b::text[], %(cs_units)b::int[],
                         %(cs_percent)b::int[], %(cs_held)b::bigint[], %(cs_sold)b::bigint[])
    ON CONFLICT (sku, channel_id) DO UPDATE SET max_units = excluded.max_units,
        max_percent = excluded.max_percent, held = excluded.held, sold = excluded.sold
    RETURNING 1
), j AS (""",
    )
)
assert "v.channel\n" in BATCH_SQL_CHANNELS and "%(rn_channel)b" in BATCH_SQL_CHANNELS
assert "), cs AS (" in BATCH_SQL_CHANNELS


def _compact(sql: str) -> str:
    """``sql`` on one line, its runs of blanks one space (no comments, no string literal
    holds two blanks in a row). psycopg caches a statement's conversion to PostgreSQL's
    placeholders only up to 4,096 characters and 50 parameters
    (``psycopg._queries.MAX_CACHED_STATEMENT_LENGTH``): laid out for reading, the batch
    statement was 4,114 and psycopg re-parsed it for every batch, 80 us of the shard's CPU."""
    return " ".join(sql.split())


BATCH_SQL, BATCH_SQL_CHANNELS, LOOKUP_SQL = map(
    _compact, (BATCH_SQL, BATCH_SQL_CHANNELS, LOOKUP_SQL)
)


def _holds_only(sql: str) -> str:
    """``sql`` without what a batch that only makes holds leaves empty: the changed holds
    (``ru``), the customer totals (``cu``), the stored request keys (``d``) and their checks.
    PostgreSQL starts every CTE of a statement, empty or not: leaving out these three saved
    27-40 us of its CPU per batch (in process, 1,500 batches of 64 reserves, three pairs)."""
    cuts = (
        (
            r"\), ru AS \( UPDATE reservations .*? RETURNING 1 \),"
            r" cu AS \( INSERT INTO customer_units .*? RETURNING 1 \), j AS \(",
            "), j AS (",
        ),
        (r"\), d AS \( INSERT INTO inventory_requests .*? RETURNING 1 \), o AS \(", "), o AS ("),
        (r"WHEN \(SELECT count\(\*\) FROM d\) <> %\(n_requests\)s OR ", "WHEN "),
        (r" OR EXISTS \(SELECT 1 FROM reservations WHERE \S* = ANY\(%\(key_holds\)\S*", ""),
        (
            r" WHEN \(SELECT count\(\*\) FROM ru\) <> %\(n_changed\)s THEN"
            r" inventory_batch_refused\('a changed reservation has no row'\) END,",
            " END,",
        ),
        (r"\(SELECT count\(\*\) FROM cu\)", "0"),
    )
    for pattern, replacement in cuts:
        sql, n = re.subn(pattern, replacement, sql)
        assert n == 1, pattern
    return sql


# A batch of new holds only (the shop's adds under load): no changed hold, no customer
# total (no per-customer limit on its SKUs), no request whose key is stored.
BATCH_SQL_HOLDS = _holds_only(BATCH_SQL)

_ENTRY_COLUMNS = (
    "kinds",
    "rids",
    "skus",
    "refs",
    "qtys",
    "before",
    "after",
    "expires",
    "on_hand",
    "sold",
    "pcl",
    "lst",
    "cap",
)


# Each array parameter's element type, as the statements cast it: encoded here once
# (pg_arrays), not adapted by psycopg list by list.
_ARRAYS: dict[str, Callable[[Sequence[Any]], PgArray]] = {
    "carts": text,
    **dict.fromkeys(("c_sku", "rn_id", "rn_sku", "rn_cart", "rn_customer", "rn_status"), text),
    **dict.fromkeys(("rn_order", "ru_id", "ru_status", "ru_order", "cu_sku", "cu_customer"), text),
    **dict.fromkeys(("rids", "skus", "refs", "rn_channel", "cs_sku", "cs_channel"), text),
    "key_holds": text,
    "e_carts": text,
    **dict.fromkeys(("c_on_hand", "c_reserved", "c_sold", "qtys", "before", "after"), int8),
    **dict.fromkeys(("on_hand", "sold", "cs_held", "cs_sold", "keys"), int8),
    "hold_keys": int8_hex,
    **dict.fromkeys(("c_pcl", "c_lst", "c_cap", "rn_qty", "ru_qty", "cu_units"), int4),
    **dict.fromkeys(("pcl", "lst", "cap", "cs_units", "cs_percent"), int4),
    **dict.fromkeys(("rn_created", "rn_expires", "ru_expires", "expires"), float8),
    "kinds": int2,
}


# The array parameters each statement names: only those are encoded (the holds-only one
# names 32 of the 49).
_USES = {
    sql: tuple(name for name in _ARRAYS if f"%({name})" in sql)
    for sql in (BATCH_SQL, BATCH_SQL_HOLDS, BATCH_SQL_CHANNELS)
}


def batch_sql(batch: BatchWrite) -> tuple[str, dict[str, Any]]:
    """The statement that writes ``batch``, and its parameters."""
    params = batch_params(batch)
    sql = BATCH_SQL
    if batch.channels:
        rn, cs = batch.created, batch.channels
        params.update(
            rn_channel=[r[R_CHANNEL] if len(r) > R_CHANNEL else None for r in rn],
            cs_sku=[x[0] for x in cs],
            cs_channel=[x[1] for x in cs],
            cs_units=[x[2] for x in cs],
            cs_percent=[x[3] for x in cs],
            cs_held=[x[4] for x in cs],
            cs_sold=[x[5] for x in cs],
        )
        sql = BATCH_SQL_CHANNELS
    elif not (batch.changed or batch.customer_units or params["n_requests"]):
        sql = BATCH_SQL_HOLDS
    encoded: list[tuple[Any, Callable[[Sequence[Any]], PgArray], PgArray]] = []
    for name in _USES[sql]:
        params[name] = _encode_once(params[name], _ARRAYS[name], encoded)
    return sql, params


def _encode_once(
    values: Sequence[Any],
    encode: Callable[[Sequence[Any]], PgArray],
    encoded: list[tuple[Any, Callable[[Sequence[Any]], PgArray], PgArray]],
) -> PgArray:
    """``encode(values)``, or the bytes of an equal list of the same type encoded before in
    this batch: a batch of holds sends its holds' ids twice (the rows, the journal's refs)
    and their carts twice (the rows, the journal's carts)."""
    for other, how, done in encoded:
        if how is encode and other == values:
            return done
    done = encode(values)
    encoded.append((values, encode, done))
    return done


def batch_params(batch: BatchWrite) -> dict[str, Any]:
    # A reservation entry has 8 fields, a stock change 13: the rest of its columns are NULL.
    columns = [list(c) for c in zip_longest(*batch.entries)]
    columns += [[None] * len(batch.entries)] * (len(_ENTRY_COLUMNS) - len(columns))
    params: dict[str, Any] = dict(zip(_ENTRY_COLUMNS, columns, strict=True))
    c, rn, ru, cu = batch.counters, batch.created, batch.changed, batch.customer_units
    params.update(
        shard=batch.shard_id,
        epoch=batch.epoch,
        at=batch.at,
        carts=batch.carts,
        c_sku=[r.sku for r in c],
        c_on_hand=[r.on_hand for r in c],
        c_reserved=[r.reserved for r in c],
        c_sold=[r.sold for r in c],
        c_pcl=[r.per_customer_limit for r in c],
        c_lst=[r.low_stock_threshold for r in c],
        c_cap=[r.low_stock_order_cap for r in c],
        n_counters=len(c),
        rn_id=[r[R_ID] for r in rn],
        rn_sku=[r[R_SKU] for r in rn],
        rn_qty=[r[R_QTY] for r in rn],
        rn_cart=[r[R_CART] for r in rn],
        rn_customer=[r[R_CUSTOMER] for r in rn],
        rn_status=[r[R_STATUS] for r in rn],
        rn_order=[r[R_ORDER] for r in rn],
        rn_created=[batch.at] * len(rn),  # created by this batch
        rn_expires=[r[R_EXPIRES] for r in rn],
        ru_id=[r[R_ID] for r in ru],
        ru_qty=[r[R_QTY] for r in ru],
        ru_status=[r[R_STATUS] for r in ru],
        ru_order=[r[R_ORDER] for r in ru],
        ru_expires=[r[R_EXPIRES] for r in ru],
        n_changed=len(ru),
        cu_sku=[x[0] for x in cu],
        cu_customer=[x[1] for x in cu],
        cu_units=[x[2] for x in cu],
    )
    # Each entry's cart, for the relay's events (019): a hold's entries name it by its id.
    cart_of = {r[R_ID]: r[R_CART] for r in rn}
    cart_of.update((r[R_ID], r[R_CART]) for r in ru)
    keyed = batch.keyed_ids
    params.update(
        e_carts=[cart_of.get(e[3]) for e in batch.entries],
        keys=[request_key(rid) for rid in keyed],
        n_requests=len(keyed),
        hold_keys=[key_hex(r[R_ID]) for r in rn],
        key_holds=[reservation_id(rid) for rid in keyed],
    )
    return params
