"""A second active order of one cart is refused by PostgreSQL's index
(``orders_one_active_per_cart``) and reaches checkout as matchday's Conflict, never as the
driver's UniqueViolation: the shop feature does not know psycopg (issue 14)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from matchday.domain.errors import Conflict
from matchday.settings import Settings
from matchday.shop.models import Order, OrderLine
from matchday.storage.db import make_pool
from matchday.storage.shop_repo import ShopRepository
from tests.conftest import uid

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[AsyncConnectionPool]:
    pool = make_pool(settings.database_url, max_size=2, name="shop-repo-test")
    await pool.open()
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_second_active_order_of_a_cart_is_a_conflict_and_writes_nothing(
    pool: AsyncConnectionPool,
) -> None:
    shop = ShopRepository(pool)
    cart, customer = uid("cart"), uid("cust")
    await shop.create_cart(cart, customer)
    now = time.time()
    first = Order(
        order_id=uid("order"),
        cart_id=cart,
        customer_id=customer,
        status="payment_pending",
        total_cents=5000,
        currency="EUR",
        payment_token="tok_visa",
        attempts=0,
        gateway=None,
        payment_ref=None,
        failure_code=None,
        failure_message=None,
        created_at=now,
        updated_at=now,
    )
    created, fresh = await shop.create_order(first, uid("idem"))
    assert fresh and created.order_id == first.order_id

    second = replace(first, order_id=uid("order"))
    with pytest.raises(Conflict, match=f"cart {cart} is already being checked out"):
        await shop.create_order(second, uid("idem"))
    assert await shop.order(second.order_id) is None
    assert (await shop.order(first.order_id)) is not None


def order_of(cart: str, customer: str, lines: tuple[OrderLine, ...] = ()) -> Order:
    now = time.time()
    return Order(
        order_id=uid("order"),
        cart_id=cart,
        customer_id=customer,
        status="payment_pending",
        total_cents=sum(ln.qty * ln.unit_price_cents for ln in lines),
        currency="EUR",
        payment_token="tok_visa",
        attempts=0,
        gateway=None,
        payment_ref=None,
        failure_code=None,
        failure_message=None,
        created_at=now,
        updated_at=now,
        lines=lines,
    )


async def test_a_used_key_gives_the_first_order_back_and_writes_nothing(
    pool: AsyncConnectionPool,
) -> None:
    """create_order's one statement writes the order, its lines, its event and closes its
    cart only when the key is new: a second call under the same key (a race past checkout's
    own look-up) gets the first order back, as it was stored."""
    shop = ShopRepository(pool)
    cart, customer, key = uid("cart"), uid("cust"), uid("idem")
    await shop.create_cart(cart, customer)
    first = order_of(cart, customer)
    created, fresh = await shop.create_order(first, key)
    assert fresh
    again, fresh_again = await shop.create_order(replace(first, total_cents=1), key)
    assert not fresh_again and again == created and again.total_cents == 0
    assert [e["status"] for e in await shop.order_events(first.order_id)] == ["payment_pending"]
    header = await shop.cart_header(cart)
    assert header is not None and (header.status, header.order_id) == (
        "checked_out",
        first.order_id,
    )


async def test_a_refused_order_rolls_back_and_hands_its_connection_back_as_it_came(
    settings: Settings,
) -> None:
    """The refusal is raised inside create_order's pipelined transaction: nothing of the
    order stays, the cart stays open, and the pool's one connection is lent again out of
    autocommit and out of any transaction (the pool's other users rely on both)."""
    one = make_pool(settings.database_url, max_size=1, name="shop-repo-one")
    await one.open()
    try:
        shop = ShopRepository(one)
        cart, customer = uid("cart"), uid("cust")
        await shop.create_cart(cart, customer)
        gone = OrderLine(uid("res"), "NO-SUCH-HOLD", 1, 100, "Kit")  # not held (any more)
        order = order_of(cart, customer, (gone,))
        with pytest.raises(Conflict, match="changed while it was being checked out"):
            await shop.create_order(order, uid("idem"))
        assert await shop.order(order.order_id) is None
        header = await shop.cart_header(cart)
        assert header is not None and (header.status, header.order_id) == ("open", None)
        async with one.connection() as conn:
            assert not conn.autocommit
            assert conn.pgconn.transaction_status == TransactionStatus.IDLE
    finally:
        await one.close()
