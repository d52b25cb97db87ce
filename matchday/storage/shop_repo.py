"""All SQL of carts and orders."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import psycopg
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
# A checkout waits this long at most for a line edit of its cart (one inventory call) to
# finish; past it, the lock wait is a 503 that the client retries.
LOCK_TIMEOUT = "SET LOCAL lock_timeout = '5s'"

_ORDER_COLUMNS = (
    "order_id, cart_id, customer_id, status, total_cents, currency, payment_token, attempts,"
    " gateway, payment_ref, failure_code, failure_message,"
    " extract(epoch FROM created_at), extract(epoch FROM updated_at),"
    " discount_cents, offer_code, extract(epoch FROM pay_by)"
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
        pay_by=None if row[16] is None else float(row[16]),
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
            return replace(header, lines=await self._cart_lines(conn, cart_id))

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
                "SELECT reservation_id, sku, qty, status, extract(epoch FROM expires_at)"
                " FROM reservations WHERE cart_id = %s AND (status = 'held'"
                "   OR (status <> 'committed' AND closed_at > now() - %s * interval '1 s'))"
                " ORDER BY created_at, reservation_id",
                (cart_id, RECENTLY_CLOSED_S),
            )
        ).fetchall()
        return tuple(CartLine(r[0], r[1], r[2], r[3], float(r[4])) for r in rows)

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

        Returns (order, created). A second active checkout of the same cart is a Conflict
        (the index ``orders_one_active_per_cart`` refuses it; nothing is written).
        """
        try:
            return await self._insert_order(order, idempotency_key)
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"cart {order.cart_id} is already being checked out") from None

    async def _insert_order(self, order: Order, idempotency_key: str) -> tuple[Order, bool]:
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
            await self._close_cart(conn, order)
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
                    (
                        order.order_id,
                        ln.reservation_id,
                        ln.sku,
                        ln.qty,
                        ln.unit_price_cents,
                        ln.title,
                    )
                    for ln in order.lines
                ],
            )
            await conn.execute(
                "INSERT INTO order_events (order_id, status) VALUES (%s, %s)",
                (order.order_id, order.status),
            )
        created = await self.order(order.order_id)
        assert created is not None
        return created, True

    @staticmethod
    async def _close_cart(conn: Any, order: Order) -> None:
        """The cart goes to checkout with the order, in its transaction: from here no line
        of it can be added, removed or resized (the inventory engine's add fence reads this
        status too). Every line the order names must still be held as the order saw it: a
        line edit that finished first (:meth:`cart_for_edit`) makes the checkout refuse."""
        await conn.execute(LOCK_TIMEOUT)
        cur = await conn.execute(
            "UPDATE carts SET status = 'checked_out', order_id = %s, updated_at = now()"
            " WHERE cart_id = %s AND status = 'open'",
            (order.order_id, order.cart_id),
        )
        if cur.rowcount != 1:
            raise Conflict(f"cart {order.cart_id} is already being checked out")
        held = await (
            await conn.execute(
                "SELECT reservation_id, qty FROM reservations"
                " WHERE reservation_id = ANY(%s) AND status = 'held'",
                ([ln.reservation_id for ln in order.lines],),
            )
        ).fetchall()
        if sorted((r[0], int(r[1])) for r in held) != sorted(
            (ln.reservation_id, ln.qty) for ln in order.lines
        ):
            raise Conflict(
                f"cart {order.cart_id} changed while it was being checked out: look at it again"
            )
        # The engine takes a hold only while the cart is open and keeps the cart's row FOR
        # SHARE until the hold commits (010_compact_journal.sql), so the UPDATE above waited
        # for any such batch: a hold it committed after checkout read the cart is not in the
        # order. Refuse the order (the cart stays open) rather than strand that hold.
        late = await (
            await conn.execute(
                "SELECT count(*) FROM reservations WHERE cart_id = %s AND status = 'held'"
                " AND expires_at > now() AND NOT reservation_id = ANY(%s)",
                (order.cart_id, [ln.reservation_id for ln in order.lines]),
            )
        ).fetchone()
        if late and late[0]:
            raise Conflict("items were added to the cart during checkout: review it and pay again")

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
        reopen_cart: bool = False,
        unless_captured: bool = False,
        **fields: Any,
    ) -> bool:
        """Move an order to ``status`` if it is in one of ``from_statuses``; record the event.

        The guard makes every transition idempotent and race-free: of two processes settling
        the same order, exactly one moves it. ``unless_captured`` also refuses when a payment
        of the order was claimed for capture: the claim (PaymentsRepository.claim_capture)
        locks the same row, so an order failed this way can never be captured later. A
        failed or cancelled order (or one refunded before it sold, ``reopen_cart``) gives
        its offer and its cart back.
        """
        allowed = {"gateway", "payment_ref", "failure_code", "failure_message", "attempts"}
        assert set(fields) <= allowed, fields
        sets = "".join(f", {name} = %s" for name in fields)
        async with StorageConnection(self.pool, "shop") as conn, conn.transaction():
            if unless_captured and not await self._uncaptured(conn, order_id):
                return False
            cur = await conn.execute(
                f"UPDATE orders SET status = %s, updated_at = now(){sets}"
                " WHERE order_id = %s AND status = ANY(%s)",
                (status, *fields.values(), order_id, list(from_statuses)),
            )
            if cur.rowcount != 1:
                return False
            if status in (FAILED, CANCELLED) or reopen_cart:
                # The shopper may hold the items again and pay another way.
                await release_offer(conn, order_id)
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

    @staticmethod
    async def _uncaptured(conn: Any, order_id: str) -> bool:
        """Lock the order's row, then: no capture claimed for it (read after the lock)."""
        await conn.execute(
            "SELECT 1 FROM orders WHERE order_id = %s FOR NO KEY UPDATE", (order_id,)
        )
        row = await (
            await conn.execute("SELECT 1 FROM payment_captures WHERE order_id = %s", (order_id,))
        ).fetchone()
        return row is None

    async def bump_attempt(self, order_id: str, pay_within_s: float) -> int:
        """Count a charge attempt; the first one starts the order's payment deadline."""
        async with StorageConnection(self.pool, "shop") as conn:
            row = await (
                await conn.execute(
                    "UPDATE orders SET attempts = attempts + 1, updated_at = now(),"
                    " pay_by = COALESCE(pay_by, now() + %s * interval '1 s')"
                    " WHERE order_id = %s RETURNING attempts",
                    (pay_within_s, order_id),
                )
            ).fetchone()
        assert row is not None
        return int(row[0])

    async def reservation_state(self, reservation_id: str) -> tuple[str, str | None] | None:
        """(status, order_id) of a reservation as storage has it; None if there is none."""
        async with StorageConnection(self.pool, "shop") as conn:
            row = await (
                await conn.execute(
                    "SELECT status, order_id FROM reservations WHERE reservation_id = %s",
                    (reservation_id,),
                )
            ).fetchone()
        return None if row is None else (str(row[0]), row[1])

    async def replace_line(self, order_id: str, old: str, new: str) -> None:
        """The order's line held by ``old`` is now held by ``new`` (held again, ADR 0008)."""
        async with StorageConnection(self.pool, "shop") as conn:
            await conn.execute(
                "UPDATE order_lines SET reservation_id = %s"
                " WHERE order_id = %s AND reservation_id = %s",
                (new, order_id, old),
            )

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


if TYPE_CHECKING:  # mypy proves the repository implements the shop's ports (issue 14)
    from matchday.shop.ports import CartStore, OrderStore

    def _implements(repo: ShopRepository) -> tuple[CartStore, OrderStore]:
        return repo, repo
