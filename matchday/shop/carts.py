"""Carts: a cart's lines are its reservations in the inventory engine.

Adding an item reserves stock with an expiry; changing a quantity resizes the hold in place;
removing releases it. An abandoned cart needs no sweeper: its holds expire on the engine's
own timers. Every call is idempotent by the client's idempotency key, which becomes the
engine request id, so a retried add never holds twice. An add's request id carries its
cart's creation time as a tag (ADR 0039), which a retry reads again from the cart.
"""

from __future__ import annotations

from matchday.domain.errors import CartClosed, Conflict, NotFound
from matchday.domain.ids import check_key, derived_id
from matchday.domain.memo import Memo
from matchday.inventory.commands import ReservationView, check_sku
from matchday.inventory.ids import tagged
from matchday.shop.models import IN_FLIGHT, Cart, CartLine
from matchday.shop.ports import CartStore, Prices, Stock

# Per-replica memory of facts the add-to-cart hot path would otherwise read from PostgreSQL
# on every request (bench/http.py profile: ~40% of a replica's CPU per add, 2026-11-25).
#
# Carts: who owns a cart never changes (its id derives from its owner, ``derived_id``), nor
# does its creation time, and carts are never deleted, so both are remembered for
# CART_TTL_S. Whether the cart is still *open* is not the memo's to say: the engine's cart
# fence (ADR 0017) refuses a hold on a cart that is not open, in one transaction against the
# row checkout closes, whatever a replica believes (tests/integration/test_cart_fence.py).
# That refusal is dear (the engine rolls its whole batch back and reloads its SKUs,
# ``ShardCore._undo``), so a CartClosed answer makes the memo forget the cart: the next add
# reads the header again and is refused here. A replica sends the engine one add per closed
# cart (plus those already in flight). The TTL is only a bound on relying on the fence alone
# (a cart row that vanished would count as open there); at a shopper's pace it costs one
# PostgreSQL read per cart per 10 minutes. It was 1 s (a cart checked out elsewhere could
# take holds for that long), which re-read the header on nearly every add of a real shopper,
# who adds a line every few seconds.
CART_TTL_S = 600.0
# Products: a product withdrawn may be added for up to SELLABLE_TTL_S more; checkout
# re-prices from PostgreSQL, refusing it.
SELLABLE_TTL_S = 5.0


class CartService:
    def __init__(self, repo: CartStore, stock: Stock, prices: Prices, *, hold_ttl_s: float) -> None:
        self.repo = repo
        self.stock = stock
        self.prices = prices
        self.hold_ttl_s = hold_ttl_s
        self._open_carts = Memo(CART_TTL_S)
        self._sellable = Memo(SELLABLE_TTL_S)

    async def create(self, customer_id: str, key: str) -> Cart:
        cart = await self.repo.create_cart(
            derived_id("c", customer_id, check_key(key)), customer_id
        )
        if cart.customer_id != customer_id:  # a 96-bit collision: refuse rather than share
            raise Conflict("cart id collision; retry with another Idempotency-Key")
        return cart

    async def view(self, customer_id: str, cart_id: str) -> Cart:
        cart = await self.repo.cart(cart_id)
        if cart is None or cart.customer_id != customer_id:
            raise NotFound("cart", cart_id)  # someone else's cart does not exist for you
        return cart

    async def add(
        self, customer_id: str, cart_id: str, sku: str, qty: int, key: str
    ) -> ReservationView:
        check_sku(sku)
        known = self._open_carts.get(cart_id)
        if type(known) is not tuple or known[0] != customer_id:
            cart = await self._open_cart(customer_id, cart_id)
            known = (customer_id, cart.created_at)
            self._open_carts.put(cart_id, known)
        if self._sellable.get(sku) is None:
            if sku not in await self.prices.price_of([sku]):
                raise NotFound("product", sku)
            self._sellable.put(sku, True)
        try:
            # Tagged with the cart's creation time, which never changes: the hold sorts with
            # its cart's, where PostgreSQL has just been inserting (ADR 0039).
            request_id = tagged(f"add:{cart_id}:{check_key(key)}", known[1])
            return await self.stock.reserve(
                request_id, sku, qty, cart_id, customer_id, self.hold_ttl_s
            )
        except CartClosed:
            self._open_carts.drop(cart_id)  # checked out elsewhere: ask PostgreSQL next time
            raise

    async def set_quantity(
        self, customer_id: str, cart_id: str, sku: str, qty: int, key: str
    ) -> Cart:
        check_key(key)
        if qty == 0:
            return await self.remove(customer_id, cart_id, sku, key)
        check_sku(sku)
        async with self.repo.cart_for_edit(cart_id) as found:
            lines = self._held_lines(customer_id, cart_id, sku, found)
            first, rest = lines[0], lines[1:]
            # Extra lines go first: they count against the customer's limit while the first grows.
            for line in rest:
                await self.stock.release(
                    f"rel:{cart_id}:{key}:{line.reservation_id}", sku, line.reservation_id
                )
            if first.qty != qty:
                await self.stock.resize(f"rsz:{cart_id}:{key}", sku, first.reservation_id, qty)
        return await self.view(customer_id, cart_id)

    async def remove(self, customer_id: str, cart_id: str, sku: str, key: str) -> Cart:
        check_key(key)
        check_sku(sku)
        async with self.repo.cart_for_edit(cart_id) as found:
            for line in self._held_lines(customer_id, cart_id, sku, found):
                await self.stock.release(
                    f"rel:{cart_id}:{key}:{line.reservation_id}", sku, line.reservation_id
                )
        return await self.view(customer_id, cart_id)

    async def _open_cart(self, customer_id: str, cart_id: str) -> Cart:
        cart = await self.repo.cart_header(cart_id)
        if cart is None or cart.customer_id != customer_id:
            raise NotFound("cart", cart_id)
        if cart.status != "open":
            raise Conflict(f"cart {cart_id} is {cart.status.replace('_', ' ')}")
        return cart

    @staticmethod
    def _held_lines(
        customer_id: str, cart_id: str, sku: str, found: tuple[Cart, str | None] | None
    ) -> list[CartLine]:
        """The cart's held lines of ``sku``, read under :meth:`CartStore.cart_for_edit`.

        A cart that has gone to checkout keeps its lines as its order took them: releasing
        one would take the stock from under an order that may still be paid (issue 13)."""
        if found is None or found[0].customer_id != customer_id:
            raise NotFound("cart", cart_id)
        cart, order_status = found
        if cart.status != "open":
            if order_status in IN_FLIGHT:
                raise Conflict(
                    f"cart {cart_id} has an order in progress ({order_status}): its lines"
                    " cannot change until the payment settles"
                )
            raise Conflict(f"cart {cart_id} is {cart.status.replace('_', ' ')}")
        lines = [line for line in cart.held if line.sku == sku]
        if not lines:
            raise NotFound("cart line", sku)
        return lines
