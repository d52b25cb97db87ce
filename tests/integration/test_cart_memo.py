"""The replica's cart memo remembers owners, not openness (carts.py, CART_TTL_S; issue 12).

An add to a cart checked out since the replica last read it is refused by the engine's cart
fence (409 ``cart_closed``); the memo then forgets the cart, so the next add is refused by the
replica itself (409 ``conflict``) without costing the engine a refused batch. Nothing is held
on the closed cart either way, and a cart given back by a failed payment takes holds again.
Over real PostgreSQL, Redis and the shard core, through the shop's HTTP app.
"""

from __future__ import annotations

from typing import Any

import pytest

from matchday.settings import Settings
from tests.integration.shop_stack import Stack, open_stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(settings: Settings) -> Any:
    async with open_stack(settings) as s:
        yield s


def count_engine_reserves(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The cart ids of the holds the shop asks the engine for from now on."""
    assert stack.ctx.carts is not None
    stock = stack.ctx.carts.stock
    real = stock.reserve
    seen: list[str] = []

    async def reserve(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[3])
        return await real(*args, **kwargs)

    monkeypatch.setattr(stock, "reserve", reserve)
    return seen


async def pay(stack: Stack, auth: dict[str, str], cart: str, token: str) -> dict[str, Any]:
    r = await stack.orders.post(
        "/", json={"cart_id": cart, "payment_token": token},
        headers={**auth, "Idempotency-Key": f"pay-{token}"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    return order


async def cart_with_a_line(stack: Stack) -> tuple[str, dict[str, str], str]:
    """A fresh SKU of 10 units, and a shopper's cart holding one: the replica now remembers
    the cart."""
    (sku,) = await stack.product(stock=10)
    auth = await stack.session()
    cart = await stack.cart(auth)
    r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=auth)
    assert r.status_code == 201, r.text
    return sku, auth, cart


async def test_a_checked_out_cart_costs_the_engine_one_refusal_then_the_replica_refuses(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku, auth, cart = await cart_with_a_line(stack)
    assert (await pay(stack, auth, cart, "pm_card_visa"))["status"] == "paid"
    engine_calls = count_engine_reserves(stack, monkeypatch)

    late = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=auth)
    assert late.status_code == 409, late.text
    assert late.json() == {
        "code": "cart_closed",
        "message": f"cart {cart} is checked out: it takes no more items",
        "retryable": False,
    }
    later = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=auth)
    assert later.status_code == 409, later.text
    assert later.json()["code"] == "conflict"
    assert later.json()["message"] == f"cart {cart} is checked out"
    assert engine_calls == [cart]  # the second refusal never reached the engine
    assert await stack.stock(sku) == (10, 0, 1)  # only the paid unit, nothing held


async def test_a_cart_given_back_by_a_failed_payment_takes_holds_again(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku, auth, cart = await cart_with_a_line(stack)
    assert (await pay(stack, auth, cart, "pm_card_chargeDeclined"))["status"] == "payment_failed"
    engine_calls = count_engine_reserves(stack, monkeypatch)
    again = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku, "qty": 2}, headers=auth)
    assert again.status_code == 201, again.text
    assert engine_calls == [cart]
    assert await stack.stock(sku) == (10, 2, 0)


async def test_another_shoppers_cart_is_not_found_even_once_remembered(stack: Stack) -> None:
    (sku,) = await stack.product(stock=10)
    owner, other = await stack.session(), await stack.session()
    cart = await stack.cart(owner)
    r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=owner)
    assert r.status_code == 201, r.text
    stolen = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=other)
    assert stolen.status_code == 404, stolen.text
    assert stolen.json()["code"] == "not_found"
    assert await stack.stock(sku) == (10, 1, 0)
