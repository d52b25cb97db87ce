"""All SQL of carts and orders."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from matchday.domain.errors import Conflict
from matchday.polls.models import OfferInvalid
from matchday.shop.models import CANCELLED, FAILED, Cart, CartLine, Order, OrderLine
from matchday.storage.db import StorageConnection, autocommit
from matchday.storage.polls_repo import claim_offer

# Lines whose hold ended this recently are still shown, so a shopper sees "expired" rather
# than a line silently vanishing from the cart.
RECENTLY_CLOSED_S = 1800
# A checkout waits this long at most for a line edit of its cart (one inventory call) to
# finish; past it, the lock wait is a 503 that the client retries.
LOCK_TIMEOUT = "SET LOCAL lock_timeout = '5s'"

# An order's row with its lines (a JSON array), so that reading an order is one statement.
_ORDER_COLUMNS = (
    "o.order_id, o.cart_id, o.customer_id, o.status, o.total_cents, o.currency,"
    " o.payment_token, o.attempts, o.gateway, o.payment_ref, o.failure_code,"
    " o.failure_message, extract(epoch FROM o.created_at), extract(epoch FROM o.updated_at),"
    " o.discount_cents, o.offer_code, extract(epoch FROM o.pay_by),"
    " (SELECT COALESCE(json_agg(json_build_array(l.reservation_id, l.sku, l.qty,"
    "   l.unit_price_cents, l.title) ORDER BY l.sku, l.reservation_id), '[]')"
    "  FROM order_lines l WHERE l.order_id = o.order_id)"
)


def _holds_of_cart(made: str) -> str:
    """Reservations r of the cart %(cart)s created at ``made`` (SQL): the shop tags each add
    with its cart's creation time (ADR 0039), so the tagged ones lie in one range of the
    primary key; the few without a tag are in the partial index ``reservations_by_cart``
    (022_cart_holds_by_their_tag.sql, ADR 0041)."""
    return (
        f"r.cart_id = %(cart)s AND (r.reservation_id >= cart_holds_from({made})"
        f" AND r.reservation_id < cart_holds_until({made}) OR left(r.reservation_id, 1) <> 't')"
    )


# The cart's creation time, for a statement that does not read its row otherwise.
_MADE = "(SELECT created_at FROM carts WHERE cart_id = %(cart)s)"
# A cart's lines: its holds, and those that ended lately.
_LIVE_OR_RECENT = (
    " AND (r.status = 'held'"
    " OR (r.status <> 'committed' AND r.closed_at > now() - %(recent)s * interval '1 s'))"
)
_CART_LINES = _holds_of_cart(_MADE) + _LIVE_OR_RECENT
# The same, in a statement that reads the cart's row (``carts``) already.
_LINES_OF_THIS_CART = _holds_of_cart("carts.created_at") + _LIVE_OR_RECENT


def _order(row: tuple[Any, ...]) -> Order:
    lines = [OrderLine(*line) for line in row[17]]
    return Order(
        order_id=row[0],
        cart_id=row[1],
        customer_id=row[2],
        status=row[3],
        total_cents=int(row[4]),
        currency=row[5],
        payment_token=row[6],
        attempts=int(row[7]),
        gateway=row[8],
        payment_ref=row[9],
        failure_code=row[10],
        failure_message=row[11],
        created_at=float(row[12]),
        updated_at=float(row[13]),
        lines=tuple(lines),
        discount_cents=int(row[14]),
        offer_code=row[15],
        pay_by=None if row[16] is None else float(row[16]),
    )


class ShopRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    # -- carts ---------------------------------------------------------------------------------

    async def create_cart(self, cart_id: str, customer_id: str) -> Cart:
        async with autocommit(self.pool, "shop") as conn:
            row = await (
                await conn.execute(
                    "INSERT INTO carts (cart_id, customer_id) VALUES (%s, %s)"
                    " ON CONFLICT (cart_id) DO UPDATE SET updated_at = carts.updated_at"
                    " RETURNING customer_id, status, extract(epoch FROM created_at), order_id",
                    (cart_id, customer_id),
                )
            ).fetchone()
        assert row is not None
        return Cart(cart_id, row[0], row[1], float(row[2]), row[3])

    async def cart_header(self, cart_id: str) -> Cart | None:
        async with autocommit(self.pool, "shop") as conn:
            row = await (
                await conn.execute(
                    "SELECT customer_id, status, extract(epoch FROM created_at), order_id"
                    " FROM carts WHERE cart_id = %s",
                    (cart_id,),
                )
            ).fetchone()
        return None if row is None else Cart(cart_id, row[0], row[1], float(row[2]), row[3])

    async def cart(self, cart_id: str) -> Cart | None:
        """The cart with its lines, in one statement."""
        async with autocommit(self.pool, "shop") as conn:
            row = await (
                await conn.execute(
                    "SELECT customer_id, status, extract(epoch FROM created_at), order_id,"
                    " (SELECT COALESCE(json_agg(json_build_array(r.reservation_id, r.sku, r.qty,"
                    "   r.status, extract(epoch FROM r.expires_at))"
                    "   ORDER BY r.created_at, r.reservation_id), '[]')"
                    f"  FROM reservations r WHERE {_LINES_OF_THIS_CART})"
                    " FROM carts WHERE cart_id = %(cart)s",
                    {"cart": cart_id, "recent": RECENTLY_CLOSED_S},
                )
            ).fetchone()
        if row is None:
            return None
        lines = tuple(CartLine(r[0], r[1], int(r[2]), r[3], float(r[4])) for r in row[4])
        return Cart(cart_id, row[0], row[1], float(row[2]), row[3], lines)

    @contextlib.asynccontextmanager
    async def cart_for_edit(self, cart_id: str) -> AsyncIterator[tuple[Cart, str | None] | None]:
        """The cart with its lines and its order's status, share-locked until the block ends.

        A line is removed or resized inside the block, so a checkout (whose
        :meth:`create_order` updates the same row) waits for it, then finds the hold it
        changed and refuses; one that came first is seen here as a closed cart (issue 13).
        Several edits of one cart share the lock. A pooled connection is held meanwhile.
        """
        async with StorageConnection(self.pool, "shop") as conn, conn.transaction():
            await conn.execute(LOCK_TIMEOUT)
            row = await (
                await conn.execute(
                    "SELECT c.customer_id, c.status, extract(epoch FROM c.created_at),"
                    " c.order_id, o.status FROM carts c"
                    " LEFT JOIN orders o ON o.order_id = c.order_id"
                    " WHERE c.cart_id = %s FOR SHARE OF c",
                    (cart_id,),
                )
            ).fetchone()
            if row is None:
                yield None
                return
            lines = await self._cart_lines(conn, cart_id)
            yield Cart(cart_id, row[0], row[1], float(row[2]), row[3], lines), row[4]

    @staticmethod
    async def _cart_lines(conn: Any, cart_id: str) -> tuple[CartLine, ...]:
        rows = await (
            await conn.execute(
                "SELECT r.reservation_id, r.sku, r.qty, r.status, extract(epoch FROM r.expires_at)"
                f" FROM reservations r WHERE {_CART_LINES} ORDER BY r.created_at, r.reservation_id",
                {"cart": cart_id, "recent": RECENTLY_CLOSED_S},
            )
        ).fetchall()
        return tuple(CartLine(r[0], r[1], r[2], r[3], float(r[4])) for r in rows)

    # -- orders --------------------------------------------------------------------------------

    async def create_order(self, order: Order, idempotency_key: str) -> tuple[Order, bool]:
        """Insert ``order`` with its lines; if its idempotency key was used, the first order.

        Returns (order, created). A second active checkout of the same cart is a Conflict
        (the index ``orders_one_active_per_cart`` refuses it; nothing is written).
        """
        try:
            return await self._insert_order(order, idempotency_key)
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"cart {order.cart_id} is already being checked out") from None

    async def _insert_order(self, order: Order, idempotency_key: str) -> tuple[Order, bool]:
        """One transaction, two round trips: BEGIN, the order with its lines, its event and
        its cart, the checks of the cart, and the order read back go out together
        (pipeline mode); then COMMIT, or ROLLBACK when a check refuses (issue 16)."""
        reservations = [ln.reservation_id for ln in order.lines]
        async with autocommit(self.pool, "shop") as conn:
            async with conn.pipeline():  # sent, and the results read, when the block ends
                await conn.execute("BEGIN")
                await conn.execute(LOCK_TIMEOUT)
                made = await conn.execute(_CREATE_ORDER, _create_params(order, idempotency_key))
                # A statement of its own, after the cart's row lock was taken: it sees what
                # the lock holder (a line edit, the engine) committed while we waited.
                checked = await conn.execute(
                    _CHECK_CART, {"cart": order.cart_id, "lines": reservations}
                )
                back = await conn.execute(
                    f"SELECT {_ORDER_COLUMNS} FROM orders o"
                    " WHERE o.customer_id = %s AND o.idempotency_key = %s",
                    (order.customer_id, idempotency_key),
                )
            inserted, closed = await made.fetchone() or (0, 0)
            held, late = await checked.fetchone() or ([], 0)
            row = await back.fetchone()
            assert row is not None
            if not inserted:  # the key was used first: that order, and nothing written
                await conn.execute("ROLLBACK")
                return _order(row), False
            _check_cart(order, closed, held, late)
            # The offer's one use, taken with the order or not at all (issue 7).
            if order.offer_code and not await claim_offer(
                conn, order.offer_code, order.customer_id, order.order_id
            ):
                raise OfferInvalid("this code was already used")
            await conn.execute("COMMIT")
        return _order(row), True

    async def order(self, order_id: str) -> Order | None:
        async with autocommit(self.pool, "shop") as conn:
            row = await (
                await conn.execute(
                    f"SELECT {_ORDER_COLUMNS} FROM orders o WHERE o.order_id = %s", (order_id,)
                )
            ).fetchone()
        return None if row is None else _order(row)

    async def orders_of(self, customer_id: str, limit: int, before: float | None) -> list[Order]:
        async with autocommit(self.pool, "shop") as conn:
            rows = await (
                await conn.execute(
                    f"SELECT {_ORDER_COLUMNS} FROM orders o WHERE o.customer_id = %s"
                    " AND (%s::float8 IS NULL OR o.created_at < to_timestamp(%s::float8))"
                    " ORDER BY o.created_at DESC LIMIT %s",
                    (customer_id, before, before, limit),
                )
            ).fetchall()
        return [_order(r) for r in rows]

    async def update_order(
        self,
        order_id: str,
        status: str,
        *,
        from_statuses: frozenset[str],
        detail: dict[str, Any] | None = None,
        reopen_cart: bool = False,
        unless_captured: bool = False,
        close_cart: bool = False,
        dequeue: bool = False,
        **fields: Any,
    ) -> bool:
        """Move an order to ``status`` if it is in one of ``from_statuses``; record the event.

        The guard makes every transition idempotent and race-free: of two processes settling
        the same order, exactly one moves it. ``unless_captured`` also refuses when a payment
        of the order was claimed for capture: the claim (PaymentsRepository.claim_capture)
        locks the same row, so an order failed this way can never be captured later. A
        failed or cancelled order (or one refunded before it sold, ``reopen_cart``) gives
        its offer and its cart back. ``close_cart`` (the cart stays checked out with this
        order) and ``dequeue`` (out of the payments worker's queue) happen whether or not the
        order moved, as the separate calls they replace did.

        One statement, one round trip (autocommit); with ``unless_captured``, the row lock
        first and the statement after it (it must see a claim committed meanwhile), both
        sent at once in one transaction.
        """
        sql, params = _move_sql(
            order_id,
            status,
            from_statuses,
            detail or {},
            fields,
            unless_captured=unless_captured,
            reopen=status in (FAILED, CANCELLED) or reopen_cart,
            close_cart=close_cart,
            dequeue=dequeue,
        )
        async with autocommit(self.pool, "shop") as conn:
            if not unless_captured:
                return (await conn.execute(sql, params)).rowcount == 1
            async with conn.pipeline():
                await conn.execute("BEGIN")
                await conn.execute(
                    "SELECT 1 FROM orders WHERE order_id = %s FOR NO KEY UPDATE", (order_id,)
                )
                moved = await conn.execute(sql, params)
                await conn.execute("COMMIT")
            return moved.rowcount == 1

    async def reservation_state(self, reservation_id: str) -> tuple[str, str | None] | None:
        """(status, order_id) of a reservation as storage has it; None if there is none."""
        async with autocommit(self.pool, "shop") as conn:
            row = await (
                await conn.execute(
                    "SELECT status, order_id FROM reservations WHERE reservation_id = %s",
                    (reservation_id,),
                )
            ).fetchone()
        return None if row is None else (str(row[0]), row[1])

    async def replace_line(self, order_id: str, old: str, new: str) -> None:
        """The order's line held by ``old`` is now held by ``new`` (held again, ADR 0008)."""
        async with autocommit(self.pool, "shop") as conn:
            await conn.execute(
                "UPDATE order_lines SET reservation_id = %s"
                " WHERE order_id = %s AND reservation_id = %s",
                (new, order_id, old),
            )

    async def order_events(self, order_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
        async with autocommit(self.pool, "shop") as conn:
            rows = await (
                await conn.execute(
                    "SELECT seq, status, detail, extract(epoch FROM at) FROM order_events"
                    " WHERE order_id = %s AND seq > %s ORDER BY seq",
                    (order_id, after_seq),
                )
            ).fetchall()
        return [{"seq": r[0], "status": r[1], "detail": r[2], "at": float(r[3])} for r in rows]


def _move_sql(
    order_id: str,
    status: str,
    from_statuses: frozenset[str],
    detail: dict[str, Any],
    fields: dict[str, Any],
    *,
    unless_captured: bool,
    reopen: bool,
    close_cart: bool,
    dequeue: bool,
) -> tuple[str, list[Any]]:
    """ShopRepository.update_order's statement: the move (``u``), what goes with it, and its
    event, inserted only when it moved (the statement's row count says whether it did)."""
    allowed = {"gateway", "payment_ref", "failure_code", "failure_message", "attempts"}
    assert set(fields) <= allowed, fields
    assert not (reopen and close_cart), "a cart is closed or reopened, not both"
    sets = "".join(f", {name} = %s" for name in fields)
    guard = " AND NOT EXISTS (SELECT 1 FROM payment_captures WHERE order_id = %s)"
    ctes = [
        f"u AS (UPDATE orders SET status = %s, updated_at = now(){sets}"
        f" WHERE order_id = %s AND status = ANY(%s){guard if unless_captured else ''}"
        " RETURNING order_id, cart_id)"
    ]
    params: list[Any] = [status, *fields.values(), order_id, list(from_statuses)]
    if unless_captured:
        params.append(order_id)
    if reopen:  # the shopper may hold the items again and pay another way
        ctes.append(
            "r AS (DELETE FROM offer_redemptions"  # polls_repo.release_offer, if it moved
            " WHERE order_id IN (SELECT order_id FROM u))"
        )
        ctes.append(
            "c AS (UPDATE carts SET status = 'open', order_id = NULL, updated_at = now()"
            " FROM u WHERE carts.cart_id = u.cart_id AND carts.order_id = u.order_id)"
        )
    if close_cart:
        ctes.append(
            "k AS (UPDATE carts SET status = 'checked_out', order_id = o.order_id,"
            " updated_at = now() FROM orders o WHERE o.order_id = %s"
            " AND carts.cart_id = o.cart_id)"
        )
        params.append(order_id)
    if dequeue:
        ctes.append("q AS (DELETE FROM payment_queue WHERE order_id = %s)")
        params.append(order_id)
    sql = (
        f"WITH {', '.join(ctes)} INSERT INTO order_events (order_id, status, detail)"
        " SELECT order_id, %s, %s FROM u"
    )
    return sql, [*params, status, Jsonb(detail)]


# The order, its lines and its first event, and its cart closed with it (status
# 'checked_out'; from here no line of it can be added, removed or resized: the inventory
# engine's add fence reads this status too), all or nothing: when the idempotency key was
# used before, nothing is written. (inserted, cart closed) as 0 or 1 each.
_CREATE_ORDER = (
    "WITH o AS (INSERT INTO orders (order_id, cart_id, customer_id, idempotency_key,"
    "   status, total_cents, currency, payment_token, discount_cents, offer_code)"
    "   VALUES (%(order)s, %(cart)s, %(customer)s, %(key)s, %(status)s, %(total)s,"
    "   %(currency)s, %(token)s, %(discount)s, %(offer)s)"
    "   ON CONFLICT (customer_id, idempotency_key) DO NOTHING RETURNING order_id, status),"
    " l AS (INSERT INTO order_lines (order_id, reservation_id, sku, qty, unit_price_cents,"
    "   title) SELECT o.order_id, x.* FROM o, unnest(%(rids)s::text[], %(skus)s::text[],"
    "   %(qtys)s::int[], %(prices)s::bigint[], %(titles)s::text[]) x),"
    " e AS (INSERT INTO order_events (order_id, status) SELECT order_id, status FROM o),"
    " c AS (UPDATE carts SET status = 'checked_out', order_id = o.order_id, updated_at = now()"
    "   FROM o WHERE carts.cart_id = %(cart)s AND carts.status = 'open' RETURNING 1)"
    " SELECT (SELECT count(*) FROM o), (SELECT count(*) FROM c)"
)

# Every line the order names must still be held as the order saw it, and the cart hold
# nothing more: (the held lines as [reservation, qty] pairs, how many other live holds).
_CHECK_CART = (
    "SELECT (SELECT COALESCE(json_agg(json_build_array(reservation_id, qty)), '[]')"
    "   FROM reservations WHERE reservation_id = ANY(%(lines)s) AND status = 'held'),"
    f" (SELECT count(*) FROM reservations r WHERE {_holds_of_cart(_MADE)} AND r.status = 'held'"
    "   AND r.expires_at > now() AND NOT r.reservation_id = ANY(%(lines)s))"
)


def _create_params(order: Order, key: str) -> dict[str, Any]:
    return {
        "order": order.order_id,
        "cart": order.cart_id,
        "customer": order.customer_id,
        "key": key,
        "status": order.status,
        "total": order.total_cents,
        "currency": order.currency,
        "token": order.payment_token,
        "discount": order.discount_cents,
        "offer": order.offer_code,
        "rids": [ln.reservation_id for ln in order.lines],
        "skus": [ln.sku for ln in order.lines],
        "qtys": [ln.qty for ln in order.lines],
        "prices": [ln.unit_price_cents for ln in order.lines],
        "titles": [ln.title for ln in order.lines],
    }


def _check_cart(order: Order, closed: int, held: list[list[Any]], late: int) -> None:
    """The refusals of a checkout whose cart changed: raised, they roll the order back.

    A line edit that finished first (ShopRepository.cart_for_edit) makes the checkout
    refuse. The engine takes a hold only while the cart is open and keeps the cart's row
    FOR SHARE until the hold commits (010_compact_journal.sql), so closing the cart waited
    for any such batch: a hold it committed after checkout read the cart is not in the
    order. Refuse the order (the cart stays open) rather than strand that hold."""
    if closed != 1:
        raise Conflict(f"cart {order.cart_id} is already being checked out")
    if sorted((str(r), int(q)) for r, q in held) != sorted(
        (ln.reservation_id, ln.qty) for ln in order.lines
    ):
        raise Conflict(
            f"cart {order.cart_id} changed while it was being checked out: look at it again"
        )
    if late:
        raise Conflict("items were added to the cart during checkout: review it and pay again")


if TYPE_CHECKING:  # mypy proves the repository implements the shop's ports (issue 14)
    from matchday.shop.ports import CartStore, OrderStore

    def _implements(repo: ShopRepository) -> tuple[CartStore, OrderStore]:
        return repo, repo
