"""Adds racing a checkout (issue 13 item 5): no hold is stranded on a checked-out cart.

The shop replica remembers who owns a cart, not whether it is still open (carts.py,
CART_TTL_S), so an add after checkout reaches the engine; the engine takes the hold only
while the cart's row is 'open', in its own batch transaction, against the row checkout
closes in its own (010_compact_journal.sql, shop_repo.create_order). Over real PostgreSQL
and the real shard core, through the shop's HTTP apps (tests/integration/shop_stack.py).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest

from matchday.domain.errors import CartClosed
from matchday.settings import Settings
from tests.conftest import uid
from tests.integration.shop_stack import Stack, open_stack

pytestmark = pytest.mark.integration

ADDS = 60


@pytest.fixture
async def stack(settings: Settings) -> Any:
    async with open_stack(settings) as s:
        yield s


async def checkout_until_paid(stack: Stack, auth: dict[str, str], cart: str) -> dict[str, Any]:
    """As a shopper does: a 409 says items came in during checkout; look and pay again."""
    for attempt in range(50):
        r = await stack.orders.post(
            "/",
            json={"cart_id": cart, "payment_token": "pm_card_visa"},
            headers={**auth, "Idempotency-Key": f"pay-{attempt}"},
        )
        if r.status_code == 201:
            order: dict[str, Any] = r.json()
            assert order["status"] == "paid", order
            return order
        assert r.status_code == 409, r.text
    raise AssertionError("checkout never got through")


async def rows(stack: Stack, query: str, *params: Any) -> list[tuple[Any, ...]]:
    async with stack.inventory.pool.connection() as conn:
        return list(await (await conn.execute(query, params)).fetchall())


async def test_adds_racing_a_checkout_are_in_the_order_or_refused_and_nothing_stays_held(
    stack: Stack,
) -> None:
    skus = await stack.product(stock=1000, sizes=3)
    auth = await stack.session()
    cart = await stack.cart(auth)
    first = await stack.shop.post(f"/carts/{cart}/items", json={"sku": skus[0]}, headers=auth)
    assert first.status_code == 201, first.text
    rng = random.Random(7)
    answers: list[httpx.Response] = []

    async def add(i: int) -> None:
        await asyncio.sleep(rng.random() * 0.3)
        answers.append(
            await stack.shop.post(
                f"/carts/{cart}/items",
                json={"sku": skus[i % 3]},
                headers={**auth, "Idempotency-Key": f"add-{i}"},
            )
        )

    order, *_ = await asyncio.gather(
        checkout_until_paid(stack, auth, cart), *(add(i) for i in range(ADDS))
    )
    # Right after checkout, within the shop's memo of open carts: only the engine can say no.
    answers.append(
        await stack.shop.post(f"/carts/{cart}/items", json={"sku": skus[1]}, headers=auth)
    )

    held = {r.json()["reservation_id"] for r in [first, *answers] if r.status_code == 201}
    refused = [r for r in answers if r.status_code != 201]
    assert all(r.status_code == 409 for r in refused), [r.text for r in refused]
    assert {r.json()["code"] for r in refused} <= {"cart_closed", "conflict"}
    assert refused, "the last add came after the checkout"
    # Every acknowledged add is a line of the paid order; nothing else was ever held.
    lines = await rows(
        stack, "SELECT reservation_id FROM order_lines WHERE order_id = %s", order["order_id"]
    )
    assert held == {rid for (rid,) in lines}
    holds = await rows(
        stack, "SELECT reservation_id, status FROM reservations WHERE cart_id = %s", cart
    )
    assert sorted(holds) == sorted((rid, "committed") for rid in held)


async def test_the_engine_refuses_a_hold_for_a_checked_out_cart_whatever_the_shop_believes(
    stack: Stack,
) -> None:
    (sku,) = await stack.product(stock=10)
    auth = await stack.session()
    cart = await stack.cart(auth)
    r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=auth)
    assert r.status_code == 201, r.text
    order = await checkout_until_paid(stack, auth, cart)
    assert order["status"] == "paid"

    # Straight to the engine, as a replica whose memo still says "open" would send it.
    engine = stack.ctx.stock
    assert engine is not None
    with pytest.raises(CartClosed) as late:
        await engine.reserve(uid("rq"), sku, 1, cart, "whoever", 60.0)
    assert late.value.to_dict() == {
        "code": "cart_closed",
        "message": f"cart {cart} is checked out: it takes no more items",
        "retryable": False,
    }
    assert late.value.http_status == 409
    assert await stack.stock(sku) == (10, 0, 1)
    # A declined order gives its cart back: holds are taken again.
    cart2 = await stack.cart(auth)
    r = await stack.shop.post(f"/carts/{cart2}/items", json={"sku": sku}, headers=auth)
    assert r.status_code == 201, r.text
    declined = await stack.orders.post(
        "/",
        json={"cart_id": cart2, "payment_token": "pm_card_chargeDeclined"},
        headers={**auth, "Idempotency-Key": "declined"},
    )
    assert declined.json()["status"] == "payment_failed", declined.text
    again = await engine.reserve(uid("rq"), sku, 1, cart2, "whoever", 60.0)
    assert again.status == "held"
