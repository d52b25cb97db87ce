"""The audit's checks: each reads PostgreSQL and returns what it found wrong, never fixes.

All checks run in one read-only REPEATABLE READ transaction (see ``loadtests.audit``): a
shard writes counters, reservations and journal rows in one transaction, so a snapshot is
consistent even while the stack is still serving. ``Scope.sku_like`` narrows every check to
SKUs matching a LIKE pattern (the test suite shares one database between many tests).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from loadtests.acks import Ack

# A committed reservation's closed_at is PostgreSQL's now() at the batch's commit, a little
# after the shard's clock decided; the journal check below is the exact one.
CLOCK_SLACK_S = 0.001
PAID_OK = ("paid", "refunded")
SUCCEEDED = ("succeeded", "success", "paid", "captured")


@dataclass(frozen=True)
class Scope:
    sku_like: str = "%"

    def describe(self) -> str:
        return "all SKUs" if self.sku_like == "%" else f"SKUs LIKE {self.sku_like!r}"


@dataclass
class Finding:
    check: str
    title: str
    unit: str
    checked: int = 0
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


Conn = psycopg.Connection[Any]


def _rows(conn: Conn, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
    return conn.execute(sql, tuple(params)).fetchall()


def _sku_totals(conn: Conn, scope: Scope) -> list[tuple[Any, ...]]:
    return _rows(
        conn,
        "SELECT i.sku, i.on_hand, i.reserved, i.sold,"
        " coalesce(sum(r.qty) FILTER (WHERE r.status = 'committed'), 0),"
        " coalesce(sum(r.qty) FILTER (WHERE r.status = 'held'), 0)"
        " FROM inventory i LEFT JOIN reservations r USING (sku)"
        " WHERE i.sku LIKE %s GROUP BY i.sku ORDER BY i.sku",
        (scope.sku_like,),
    )


def stock_never_oversold(conn: Conn, scope: Scope) -> Finding:
    """Sold (the counter, and a recount of committed reservations) never exceeds on hand,
    which counts every unit received (seeded, restocked, or set by a supplier count)."""
    f = Finding("oversold", "units sold never exceed stock received", "SKUs")
    for sku, on_hand, reserved, sold, committed, _held in _sku_totals(conn, scope):
        f.checked += 1
        if min(on_hand, reserved, sold) < 0 or reserved + sold > on_hand:
            f.violations.append(
                f"{sku}: on_hand {on_hand}, reserved {reserved}, sold {sold} (counters)"
            )
        if committed > on_hand:
            f.violations.append(
                f"{sku}: {committed} units in committed reservations > on_hand {on_hand}"
            )
    return f


def counters_match_reservations(conn: Conn, scope: Scope) -> Finding:
    f = Finding("counters", "counters equal a recount of reservations", "SKUs")
    for sku, _on_hand, reserved, sold, committed, held in _sku_totals(conn, scope):
        f.checked += 1
        if sold != committed:
            f.violations.append(f"{sku}: sold {sold} but committed reservations hold {committed}")
        if reserved != held:
            f.violations.append(f"{sku}: reserved {reserved} but held reservations hold {held}")
    return f


# What each journaled kind leaves its reservation as.
_STATUS = {
    "reserve": "held",
    "resize": "held",
    "extend": "held",
    "release": "released",
    "commit": "committed",
    "expire": "expired",
    "revoke": "revoked",
}
_STOCK_KINDS = ("restock", "set_on_hand", "adjust_limits")


def _replay(rows: Iterable[tuple[Any, ...]]) -> dict[str, dict[str, Any]]:
    """Per SKU: each reservation's last (status, qty), the last on_hand the journal says,
    the available units after its last entry, and where the availability does not chain
    (an entry's 'before' is not the previous entry's 'after': a change left out).

    Entries converted from the journal before 010 have no availability before (and a
    reservation's none after): the chain is checked where both ends are known.
    """
    skus: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"res": {}, "on_hand": None, "after": None, "gaps": []}
    )
    for sku, kind, rid, qty, before, after, on_hand in rows:
        state = skus[sku]
        if before is not None and state["after"] is not None and before != state["after"]:
            state["gaps"].append((state["after"], before, kind, rid))
        state["after"] = after
        if kind in _STOCK_KINDS:
            state["on_hand"] = int(on_hand)
        else:
            state["res"][rid] = (_STATUS[kind], int(qty))
    return skus


def journal_matches_counters(conn: Conn, scope: Scope) -> Finding:
    """Replaying the journal gives every reservation's state and each SKU's counters.

    Assumes SKUs were created with nothing reserved or sold (as the seeding does): from
    then on only journaled mutations move the counters.
    """
    f = Finding("journal", "journal replay agrees with counters and reservations", "SKUs")
    with conn.cursor(name="audit_journal") as cur:  # server-side: the journal can be large
        cur.itersize = 5000
        cur.execute(
            "SELECT sku, kind, reservation_id, qty, available_before, available_after, on_hand"
            " FROM inventory_journal WHERE sku LIKE %s ORDER BY sku, seq",
            (scope.sku_like,),
        )
        replayed = _replay(cur)
    stored: dict[str, dict[str, tuple[str, int]]] = defaultdict(dict)
    for rid, sku, status, qty in _rows(
        conn,
        "SELECT reservation_id, sku, status, qty FROM reservations WHERE sku LIKE %s",
        (scope.sku_like,),
    ):
        stored[sku][rid] = (status, qty)
    for sku, on_hand, reserved, sold, _c, _h in _sku_totals(conn, scope):
        f.checked += 1
        state = replayed.get(sku, {"res": {}, "on_hand": None, "after": None, "gaps": []})
        res = state["res"]
        j_sold = sum(q for s, q in res.values() if s == "committed")
        j_reserved = sum(q for s, q in res.values() if s == "held")
        if (j_sold, j_reserved) != (sold, reserved):
            f.violations.append(
                f"{sku}: journal says reserved {j_reserved} sold {j_sold},"
                f" counters say reserved {reserved} sold {sold}"
            )
        if state["on_hand"] is not None and state["on_hand"] != on_hand:
            f.violations.append(
                f"{sku}: last journaled on_hand {state['on_hand']}, counter {on_hand}"
            )
        available = on_hand - reserved - sold
        if state["after"] is not None and state["after"] != available:
            f.violations.append(
                f"{sku}: journal leaves {state['after']} available, counters {available}"
            )
        for was, now, kind, rid in state["gaps"]:
            f.violations.append(
                f"{sku}: journal jumps from {was} to {now} available before a {kind}"
                + (f" of {rid}" if rid else "")
            )
        for rid, (status, qty) in stored.get(sku, {}).items():
            if rid not in res:
                f.violations.append(f"{sku}: reservation {rid} ({status}) is not in the journal")
            elif res[rid] != (status, qty):
                f.violations.append(
                    f"{sku}: reservation {rid} is {status} x{qty}, journal says"
                    f" {res[rid][0]} x{res[rid][1]}"
                )
    return f


def _order_scope(alias: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM order_lines sl WHERE sl.order_id = {alias}.order_id"
        " AND sl.sku LIKE %s)"
    )


def paid_orders_charged_once(conn: Conn, scope: Scope) -> Finding:
    f = Finding("payments", "every paid order charged exactly once", "paid orders")
    like = (scope.sku_like,)
    paid = _rows(
        conn,
        "SELECT o.order_id, o.payment_ref,"
        " (SELECT count(*) FROM order_lines l WHERE l.order_id = o.order_id)"
        f" FROM orders o WHERE o.status = 'paid' AND {_order_scope('o')}",
        like,
    )
    f.checked = len(paid)
    for order_id, ref, lines in paid:
        if not ref:
            f.violations.append(f"order {order_id}: paid without a payment reference")
        if lines == 0:
            f.violations.append(f"order {order_id}: paid for no lines")
    for ref, orders in _rows(
        conn,
        "SELECT o.payment_ref, array_agg(o.order_id ORDER BY o.order_id) FROM orders o"
        f" WHERE o.status = 'paid' AND o.payment_ref IS NOT NULL AND {_order_scope('o')}"
        " GROUP BY o.payment_ref HAVING count(*) > 1",
        like,
    ):
        f.violations.append(f"payment {ref} settles {len(orders)} orders: {', '.join(orders)}")
    for order_id, rid, status, owner in _rows(
        conn,
        "SELECT o.order_id, l.reservation_id, r.status, r.order_id FROM orders o"
        " JOIN order_lines l USING (order_id)"
        " LEFT JOIN reservations r ON r.reservation_id = l.reservation_id"
        f" WHERE o.status = 'paid' AND {_order_scope('o')} AND (r.reservation_id IS NULL"
        " OR r.status <> 'committed' OR r.order_id IS DISTINCT FROM o.order_id)",
        like,
    ):
        f.violations.append(
            f"order {order_id}: line {rid} is {status or 'missing'}"
            + (f" (committed to {owner})" if status == "committed" else "")
        )
    # The other way round: stock sold to an order that was never paid (payment_pending is
    # allowed: a checkout interrupted between commits is settled by its next resume).
    for rid, sku, order_id, status in _rows(
        conn,
        "SELECT r.reservation_id, r.sku, r.order_id, o.status FROM reservations r"
        " LEFT JOIN orders o ON o.order_id = r.order_id"
        " WHERE r.status = 'committed' AND r.sku LIKE %s"
        " AND (o.order_id IS NULL OR o.status IN ('payment_failed', 'cancelled'))",
        like,
    ):
        f.violations.append(
            f"{sku}: reservation {rid} sold to order {order_id} that is {status or 'missing'}"
        )
    _payment_attempts(conn, scope, f)
    return f


def _payment_attempts(conn: Conn, scope: Scope, f: Finding) -> None:
    """If migration 005's payment_attempts exists: at most one succeeded attempt per order."""
    columns = {
        name
        for (name,) in _rows(
            conn,
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'payment_attempts'",
        )
    }
    if not columns:
        f.notes.append("no payment_attempts table: attempts not checked")
        return
    if not {"order_id", "status"} <= columns:
        f.notes.append("payment_attempts has no order_id/status columns: attempts not checked")
        return
    for order_id, n in _rows(
        conn,
        "SELECT a.order_id, count(*) FROM payment_attempts a"
        f" WHERE a.status = ANY(%s) AND {_order_scope('a')}"
        " GROUP BY a.order_id HAVING count(*) > 1",
        (list(SUCCEEDED), scope.sku_like),
    ):
        f.violations.append(f"order {order_id}: {n} succeeded payment attempts")


def reservations_expired_in_time(conn: Conn, scope: Scope, grace_s: float) -> Finding:
    f = Finding("expiry", "no reservation outlived its expiry", "reservations")
    like = (scope.sku_like,)
    (f.checked,) = _rows(conn, "SELECT count(*) FROM reservations WHERE sku LIKE %s", like)[0]
    for rid, sku, late in _rows(
        conn,
        "SELECT reservation_id, sku, extract(epoch FROM now() - expires_at)::float8"
        " FROM reservations WHERE status = 'held' AND sku LIKE %s"
        " AND expires_at < now() - make_interval(secs => %s) ORDER BY expires_at",
        (scope.sku_like, grace_s),
    ):
        f.violations.append(f"{sku}: reservation {rid} still held {late:.0f} s after expiry")
    for rid, sku, late in _rows(
        conn,
        "SELECT reservation_id, sku, extract(epoch FROM closed_at - expires_at)::float8"
        " FROM reservations WHERE status = 'committed' AND sku LIKE %s"
        " AND closed_at > expires_at + make_interval(secs => %s)",
        (scope.sku_like, grace_s),
    ):
        f.violations.append(f"{sku}: reservation {rid} committed {late:.1f} s after expiry")
    for rid, sku, late in _rows(
        conn,
        "SELECT reservation_id, sku, extract(epoch FROM at)::float8 - expires_at"
        " FROM inventory_journal WHERE kind = 'commit' AND sku LIKE %s"
        " AND extract(epoch FROM at)::float8 > expires_at + %s",
        (scope.sku_like, CLOCK_SLACK_S),
    ):
        f.violations.append(f"{sku}: journal commits {rid} {late:.3f} s after its expiry")
    return f


def acknowledged_are_recorded(conn: Conn, acks: list[Ack]) -> Finding:
    """Every add the shop answered 201 is a reservation of that SKU, cart and customer;
    every checkout it answered paid is a paid order."""
    f = Finding("acks", "every acknowledged add-to-cart (and paid order) is recorded", "acks")
    f.checked = len(acks)
    if not acks:
        f.notes.append("no acknowledgements read: pass --acks DIR after a load test")
        return f
    adds = {a.id: a for a in acks if a.kind == "add"}
    found = {
        rid: (sku, cart, customer)
        for rid, sku, cart, customer in _rows(
            conn,
            "SELECT reservation_id, sku, cart_id, customer_id FROM reservations"
            " WHERE reservation_id = ANY(%s)",
            (list(adds),),
        )
    }
    for rid, a in adds.items():
        if rid not in found:
            f.violations.append(f"acknowledged add {rid} ({a.sku} x{a.qty}) has no reservation")
        elif found[rid] != (a.sku, a.cart_id, a.customer_id):
            f.violations.append(f"acknowledged add {rid} is recorded as {found[rid]}")
    orders = {a.id: a for a in acks if a.kind == "order"}
    statuses = dict(
        _rows(conn, "SELECT order_id, status FROM orders WHERE order_id = ANY(%s)", (list(orders),))
    )
    for order_id in orders:
        status = statuses.get(order_id)
        if status not in PAID_OK:
            f.violations.append(f"acknowledged paid order {order_id} is {status or 'missing'}")
    return f
