"""All SQL of carts and orders."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from matchday.domain.errors import Conflict
from matchday.polls.models import OfferInvalid
from matchday.shop.models import CANCELLED, FAILED, Cart, CartLine, Order, OrderLine
from matchday.storage.db import StorageConnection
from matchday.storage.polls_repo import claim_offer, release_offer

# Lines whose hold ended this recently are still shown, so a shopper sees "expired" rather
# than a line silently vanishing from the cart.
RECENTLY_CLOSED_S = 1800

_ORDER_COLUMNS = (
    "order_id, cart_id, customer_id, status, total_cents, currency, payment_token, attempts,"
    " gateway, payment_ref, failure_code, failure_message,"
    " extract(epoch FROM created_at), extract(epoch FROM updated_at),"
    " discount_cents, offer_code"
)


def _order(row: tuple[Any, ...], lines: list[OrderLine]) -> Order:
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
    )


class ShopRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    # -- carts ---------------------------------------------------------------------------------

    async def create_cart(self, cart_id: str, customer_id: str) -> Cart:
        async with StorageConnection(self.pool, "shop") as conn:
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
        async with StorageConnection(self.pool, "shop") as conn:
            row = await (
                await conn.execute(
                    "SELECT customer_id, status, extract(epoch FROM created_at), order_id"
                    " FROM carts WHERE cart_id = %s",
                    (cart_id,),
                )
            ).fetchone()
        return None if row is None else Cart(cart_id, row[0], row[1], float(row[2]), row[3])

    async def cart(self, cart_id: str) -> Cart | None:
        header = await self.cart_header(cart_id)
        if header is None:
            return None
        async with StorageConnection(self.pool, "shop") as conn:
            rows = await (
                await conn.execute(
                    "SELECT reservation_id, sku, qty, status, extract(epoch FROM expires_at)"
                    " FROM reservations WHERE cart_id = %s AND (status = 'held'"
                    "   OR (status <> 'committed' AND closed_at > now() - %s * interval '1 s'))"
                    " ORDER BY created_at, reservation_id",
                    (cart_id, RECENTLY_CLOSED_S),
                )
            ).fetchall()
        lines = tuple(CartLine(r[0], r[1], r[2], r[3], float(r[4])) for r in rows)
        return Cart(
            header.cart_id,
            header.customer_id,
            header.status,
            header.created_at,
            header.order_id,
            lines,
        )

    async def set_cart_status(self, cart_id: str, status: str, order_id: str | None) -> None:
        async with StorageConnection(self.pool, "shop") as conn:
            await conn.execute(
                "UPDATE carts SET status = %s, order_id = %s, updated_at = now()"
                " WHERE cart_id = %s",
                (status, order_id, cart_id),
            )

    # -- orders --------------------------------------------------------------------------------

    async def create_order(self, order: Order, idempotency_key: str) -> tuple[Order, bool]:
        """Insert ``order`` with its lines; if its idempotency key was used, the first order.

        Returns (order, created). A second active checkout of the same cart raises
        ``psycopg.errors.UniqueViolation`` on ``orders_one_active_per_cart``.
        """
        async with StorageConnection(self.pool, "shop") as conn, conn.transaction():
            row = await (
                await conn.execute(
                    "INSERT INTO orders (order_id, cart_id, customer_id, idempotency_key,"
                    " status, total_cents, currency, payment_token, discount_cents, offer_code)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (customer_id, idempotency_key) DO NOTHING RETURNING order_id",
                    (
                        order.order_id,
                        order.cart_id,
                        order.customer_id,
                        idempotency_key,
                        order.status,
                        order.total_cents,
                        order.currency,
                        order.payment_token,
                        order.discount_cents,
                        order.offer_code,
                    ),
                )
            ).fetchone()
            if row is None:
                existing = await self._order_by_key(conn, order.customer_id, idempotency_key)
                assert existing is not None
                return existing, False
            await _close_cart(conn, order)
            # The offer's one use, taken with the order or not at all (issue 7).
            if order.offer_code and not await claim_offer(
                conn, order.offer_code, order.customer_id, order.order_id
            ):
                raise OfferInvalid("this code was already used")
            cur = conn.cursor()
            await cur.executemany(
                "INSERT INTO order_lines (order_id, reservation_id, sku, qty, unit_price_cents,"
                " title) VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    (order.order_id, ln.reservation_id, ln.sku, ln.qty, ln.unit_price_cents,
                     ln.title)
                    for ln in order.lines
                ],
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO order_events (order_id, status) VALUES (%s, %s)",
                (order.order_id, order.status),
            )
        created = await self.order(order.order_id)
        assert created is not None
        return created, True

    async def order(self, order_id: str) -> Order | None:
        async with StorageConnection(self.pool, "shop") as conn:
            row = await (
                await conn.execute(
                    f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = %s", (order_id,)
                )
            ).fetchone()
            if row is None:
                return None
            return _order(row, await self._lines(conn, order_id))

    async def orders_of(self, customer_id: str, limit: int, before: float | None) -> list[Order]:
        async with StorageConnection(self.pool, "shop") as conn:
            rows = await (
                await conn.execute(
                    f"SELECT {_ORDER_COLUMNS} FROM orders WHERE customer_id = %s"
                    " AND (%s::float8 IS NULL OR created_at < to_timestamp(%s::float8))"
                    " ORDER BY created_at DESC LIMIT %s",
                    (customer_id, before, before, limit),
                )
            ).fetchall()
            return [_order(r, await self._lines(conn, r[0])) for r in rows]

    async def update_order(
        self,
        order_id: str,
        status: str,
        *,
        from_statuses: frozenset[str],
        detail: dict[str, Any] | None = None,
        **fields: Any,
    ) -> bool:
        """Move an order to ``status`` if it is in one of ``from_statuses``; record the event.

        The guard makes every transition idempotent and race-free: of two processes settling
        the same order, exactly one moves it.
        """
        allowed = {"gateway", "payment_ref", "failure_code", "failure_message", "attempts"}
        assert set(fields) <= allowed, fields
        sets = "".join(f", {name} = %s" for name in fields)
        async with StorageConnection(self.pool, "shop") as conn, conn.transaction():
            cur = await conn.execute(
                f"UPDATE orders SET status = %s, updated_at = now(){sets}"
                " WHERE order_id = %s AND status = ANY(%s)",
                (status, *fields.values(), order_id, list(from_statuses)),
            )
            if cur.rowcount != 1:
                return False
            if status in (FAILED, CANCELLED):  # a failed order gives its offer back
                await release_offer(conn, order_id)
                # ... and its cart, to hold the items again and pay another way.
                await conn.execute(
                    "UPDATE carts c SET status = 'open', order_id = NULL, updated_at = now()"
                    " FROM orders o WHERE o.order_id = %s AND c.cart_id = o.cart_id"
                    " AND c.order_id = o.order_id",
                    (order_id,),
                )
            await conn.execute(
                "INSERT INTO order_events (order_id, status, detail) VALUES (%s, %s, %s)",
                (order_id, status, Jsonb(detail or {})),
            )
        return True

    async def bump_attempt(self, order_id: str) -> int:
        async with StorageConnection(self.pool, "shop") as conn:
            row = await (
                await conn.execute(
                    "UPDATE orders SET attempts = attempts + 1, updated_at = now()"
                    " WHERE order_id = %s RETURNING attempts",
                    (order_id,),
                )
            ).fetchone()
        assert row is not None
        return int(row[0])

    async def order_events(self, order_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
        async with StorageConnection(self.pool, "shop") as conn:
            rows = await (
                await conn.execute(
                    "SELECT seq, status, detail, extract(epoch FROM at) FROM order_events"
                    " WHERE order_id = %s AND seq > %s ORDER BY seq",
                    (order_id, after_seq),
                )
            ).fetchall()
        return [{"seq": r[0], "status": r[1], "detail": r[2], "at": float(r[3])} for r in rows]

    async def _order_by_key(self, conn: Any, customer_id: str, key: str) -> Order | None:
        row = await (
            await conn.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders"
                " WHERE customer_id = %s AND idempotency_key = %s",
                (customer_id, key),
            )
        ).fetchone()
        return None if row is None else _order(row, await self._lines(conn, row[0]))

    @staticmethod
    async def _lines(conn: Any, order_id: str) -> list[OrderLine]:
        rows = await (
            await conn.execute(
                "SELECT reservation_id, sku, qty, unit_price_cents, title FROM order_lines"
                " WHERE order_id = %s ORDER BY sku, reservation_id",
                (order_id,),
            )
        ).fetchall()
        return [OrderLine(*r) for r in rows]


async def _close_cart(conn: Any, order: Order) -> None:
    """Close the order's cart to new holds, atomically with the order (issue 13 item 5).

    The inventory engine takes a new hold only while the cart's row is 'open' and holds
    that row FOR SHARE until the hold commits (010_compact_journal.sql): this UPDATE waits
    for such a batch, so every hold is either committed before it (and seen below) or
    refused. A hold committed after checkout read the cart is not in the order: refuse the
    order (it rolls back, the cart stays open) rather than strand that hold.
    """
    closed = await conn.execute(
        "UPDATE carts SET status = 'checked_out', order_id = %s, updated_at = now()"
        " WHERE cart_id = %s AND status = 'open'",
        (order.order_id, order.cart_id),
    )
    if closed.rowcount != 1:
        raise Conflict(f"cart {order.cart_id} is already checked out")
    late = await (
        await conn.execute(
            "SELECT count(*) FROM reservations WHERE cart_id = %s AND status = 'held'"
            " AND expires_at > now() AND NOT reservation_id = ANY(%s)",
            (order.cart_id, [line.reservation_id for line in order.lines]),
        )
    ).fetchone()
    if late and late[0]:
        raise Conflict("items were added to the cart during checkout: review it and pay again")
