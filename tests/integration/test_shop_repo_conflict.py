"""A second active order of one cart is refused by PostgreSQL's index
(``orders_one_active_per_cart``) and reaches checkout as matchday's Conflict, never as the
driver's UniqueViolation: the shop feature does not know psycopg (issue 14)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from psycopg_pool import AsyncConnectionPool

from matchday.domain.errors import Conflict
from matchday.settings import Settings
from matchday.shop.models import Order
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
