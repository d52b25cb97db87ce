"""An order in flight keeps its cart as it took it (issue 13, item 6), in-process over real
PostgreSQL, Redis and the engine's shard core.

A line of a cart whose order may still be paid is neither removed nor resized (a clear
409); a line edit and a checkout racing for the same cart serialise on the cart's row, so
exactly one of them happens first and the other sees it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from matchday.settings import Settings
from tests.integration.shop_stack import Stack, open_stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(settings: Settings):
    async with open_stack(settings) as s:
        yield s


async def add(stack: Stack, auth: dict[str, str], cart: str, sku: str, qty: int = 1) -> None:
    r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku, "qty": qty}, headers=auth)
    assert r.status_code == 201, r.text


async def filled_cart(stack: Stack, *lines: tuple[str, int]) -> tuple[dict[str, str], str]:
    auth = await stack.session()
    cart = await stack.cart(auth)
    for sku, qty in lines:
        await add(stack, auth, cart, sku, qty)
    return auth, cart


async def pay(stack: Stack, auth: dict[str, str], cart: str, token: str, key: str = "k1") -> Any:
    return await stack.orders.post(
        "/", json={"cart_id": cart, "payment_token": token},
        headers={**auth, "Idempotency-Key": key},
    )  # fmt: skip


async def edit(stack: Stack, auth: dict[str, str], cart: str, sku: str, qty: int, key: str) -> Any:
    """Resize the line (qty > 0) or remove it (qty == 0, as DELETE)."""
    headers = {**auth, "Idempotency-Key": key}
    if qty:
        return await stack.shop.put(
            f"/carts/{cart}/items/{sku}", json={"qty": qty}, headers=headers
        )
    return await stack.shop.delete(f"/carts/{cart}/items/{sku}", headers=headers)


@pytest.mark.parametrize(
    ("token", "status"),
    [
        ("pm_card_unavailable", "payment_pending"),
        ("pm_card_authenticationRequired", "requires_action"),
    ],
)
async def test_a_line_of_a_cart_whose_order_is_in_flight_is_neither_removed_nor_resized(
    stack: Stack, token: str, status: str
) -> None:
    (sku,) = await stack.product(stock=5)
    auth, cart = await filled_cart(stack, (sku, 2))
    order = (await pay(stack, auth, cart, token)).json()
    assert order["status"] == status
    for n, qty in enumerate((0, 1, 3)):
        r = await edit(stack, auth, cart, sku, qty, f"e{n}")
        assert r.status_code == 409, r.text
        body = r.json()
        assert body["code"] == "conflict" and body["retryable"] is False
        assert f"order in progress ({status})" in body["message"]
    assert await stack.stock(sku) == (5, 2, 0)  # the holds behind the order are untouched
    r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=auth)
    assert r.status_code == 409  # nor can it take more
    view = (await stack.shop.get(f"/carts/{cart}", headers=auth)).json()
    assert (view["status"], view["order_id"], view["units"]) == (
        "checked_out",
        order["order_id"],
        2,
    )


async def test_a_failed_order_gives_its_cart_back_open_for_new_holds(stack: Stack) -> None:
    (sku,) = await stack.product(stock=3)
    auth, cart = await filled_cart(stack, (sku, 1))
    order = (await pay(stack, auth, cart, "pm_card_chargeDeclined")).json()
    assert order["status"] == "payment_failed"
    view = (await stack.shop.get(f"/carts/{cart}", headers=auth)).json()
    assert (view["status"], view["order_id"], view["units"]) == ("open", None, 0)
    await add(stack, auth, cart, sku, 2)  # the same cart, held again, paid another way
    again = (await pay(stack, auth, cart, "pm_card_visa", key="k2")).json()
    assert again["status"] == "paid" and [ln["qty"] for ln in again["lines"]] == [2]
    assert await stack.stock(sku) == (3, 0, 2)


class GatedStock:
    """The engine client, with releases and resizes held at a gate until the test opens it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def release(self, *args: Any) -> Any:
        self.entered.set()
        await self.gate.wait()
        return await self.inner.release(*args)

    async def resize(self, *args: Any) -> Any:
        self.entered.set()
        await self.gate.wait()
        return await self.inner.resize(*args)


@pytest.mark.parametrize("qty", [0, 3], ids=["removed", "resized"])
async def test_a_line_edited_while_a_checkout_starts_makes_the_checkout_look_again(
    stack: Stack, qty: int
) -> None:
    kept, edited = await stack.product(stock=5, sizes=2)
    auth, cart = await filled_cart(stack, (kept, 1), (edited, 1))
    carts = stack.ctx.carts
    assert carts is not None
    gated = GatedStock(carts.stock)
    carts.stock = gated
    try:
        editing = asyncio.create_task(edit(stack, auth, cart, edited, qty, "e1"))
        await asyncio.wait_for(gated.entered.wait(), 10)  # the edit holds the cart's row
        paying = asyncio.create_task(pay(stack, auth, cart, "pm_card_visa"))
        await asyncio.sleep(0.3)
        assert not paying.done()  # the checkout waits for the edit to finish
        gated.gate.set()
        assert (await editing).status_code == 200
        refused = await paying
    finally:
        carts.stock = gated.inner
    # The order would have named the line as it was before the edit: refused, nothing made.
    assert refused.status_code == 409, refused.text
    assert "changed while it was being checked out" in refused.json()["message"]
    assert stack.gateway.charges == {}
    # Looked at again (a new checkout: that answer is final for its key), it is what the
    # cart holds now.
    order = (await pay(stack, auth, cart, "pm_card_visa", key="k2")).json()
    assert order["status"] == "paid"
    sold = {ln["sku"]: ln["qty"] for ln in order["lines"]}
    assert sold == ({kept: 1} if qty == 0 else {kept: 1, edited: qty})
    assert await stack.stock(kept) == (5, 0, 1)
    assert await stack.stock(edited) == (5, 0, qty)


async def test_a_line_edit_after_the_checkout_began_is_refused_and_changes_nothing(
    stack: Stack,
) -> None:
    (sku,) = await stack.product(stock=5)
    auth, cart = await filled_cart(stack, (sku, 2))
    checkout = stack.ctx.checkout
    assert checkout is not None
    charging = asyncio.Event()
    answer = asyncio.Event()
    real = checkout.gateway

    class SlowGateway:
        name = "slow"

        async def charge(self, req: Any) -> Any:
            charging.set()
            await answer.wait()
            return await real.charge(req)

        async def refund(self, *args: Any) -> Any:
            return await real.refund(*args)

    checkout.gateway = SlowGateway()  # type: ignore[assignment]
    try:
        paying = asyncio.create_task(pay(stack, auth, cart, "pm_card_visa"))
        await asyncio.wait_for(charging.wait(), 10)
        removed = await edit(stack, auth, cart, sku, 0, "d1")
        answer.set()
        order = (await paying).json()
    finally:
        checkout.gateway = real
    assert removed.status_code == 409 and "pending_payment" in removed.json()["message"]
    assert order["status"] == "paid"
    assert await stack.stock(sku) == (5, 0, 2)
