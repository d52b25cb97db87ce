"""Checkout and orders over HTTP (in-process app, real PostgreSQL, Redis and shard core)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace

import pytest

from matchday.settings import Settings
from matchday.web import orders_api
from tests.integration.shop_stack import Stack, open_stack
from tests.logs import messages_of

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(settings: Settings):
    async with open_stack(settings) as s:
        yield s


async def filled_cart(stack: Stack, sku: str, qty: int = 1) -> tuple[dict[str, str], str]:
    auth = await stack.session()
    cart = await stack.cart(auth)
    r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku, "qty": qty}, headers=auth)
    assert r.status_code == 201, r.text
    return auth, cart


async def pay(stack: Stack, auth: dict[str, str], cart: str, token: str, key: str = "k1"):
    return await stack.orders.post(
        "/",
        json={"cart_id": cart, "payment_token": token},
        headers={**auth, "Idempotency-Key": key},
    )


async def test_a_paid_checkout_sells_the_units_and_closes_the_cart(stack: Stack) -> None:
    (sku,) = await stack.product(stock=5, price=8999)
    auth, cart = await filled_cart(stack, sku, 2)
    r = await pay(stack, auth, cart, "pm_card_visa")
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "paid"
    assert order["total_cents"] == 2 * 8999 and order["currency"] == "EUR"
    assert [(ln["sku"], ln["qty"]) for ln in order["lines"]] == [(sku, 2)]
    assert await stack.stock(sku) == (5, 0, 2)
    assert stack.gateway.captured[order["payment_ref"]] == 2 * 8999
    view = (await stack.shop.get(f"/carts/{cart}", headers=auth)).json()
    assert (view["status"], view["order_id"]) == ("checked_out", order["order_id"])
    more = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=auth)
    assert more.status_code == 409  # a checked-out cart takes nothing more
    history = (await stack.orders.get("/", headers=auth)).json()
    assert [o["order_id"] for o in history["orders"]] == [order["order_id"]]
    got = (await stack.orders.get(f"/{order['order_id']}", headers=auth)).json()
    assert got == order


async def test_a_retried_checkout_returns_the_same_order_and_charges_once(stack: Stack) -> None:
    (sku,) = await stack.product(stock=5)
    auth, cart = await filled_cart(stack, sku)
    first = await pay(stack, auth, cart, "pm_card_visa", key="same")
    await stack.ctx.redis.flushdb()  # even with the HTTP replay record gone
    again = await pay(stack, auth, cart, "pm_card_visa", key="same")
    assert first.json()["order_id"] == again.json()["order_id"]
    assert again.json()["status"] == "paid"
    assert len(stack.gateway.charges) == 1
    assert await stack.stock(sku) == (5, 0, 1)
    other_key = await pay(stack, auth, cart, "pm_card_visa", key="other")
    assert other_key.status_code == 409  # the cart is already checked out
    assert len(stack.gateway.charges) == 1


async def test_a_declined_card_releases_the_stock_and_says_why(stack: Stack) -> None:
    (sku,) = await stack.product(stock=3)
    auth, cart = await filled_cart(stack, sku, 3)
    r = await pay(stack, auth, cart, "pm_card_chargeDeclined")
    assert r.status_code == 201
    order = r.json()
    assert order["status"] == "payment_failed"
    assert order["failure"]["code"] == "card_declined"
    assert await stack.stock(sku) == (3, 0, 0)
    view = (await stack.shop.get(f"/carts/{cart}", headers=auth)).json()
    assert view["status"] == "open" and view["units"] == 0


async def test_a_gateway_outage_keeps_the_holds_and_leaves_the_order_pending(stack: Stack) -> None:
    (sku,) = await stack.product(stock=3)
    auth, cart = await filled_cart(stack, sku, 1)
    r = await pay(stack, auth, cart, "pm_card_unavailable")
    order = r.json()
    assert order["status"] == "payment_pending"
    assert await stack.stock(sku) == (3, 1, 0)  # not released on a guess: it may have charged
    rows = await stack.ctx.repo.order_events(order["order_id"])
    assert [e["status"] for e in rows] == ["pending_payment", "payment_pending"]


async def test_a_checkout_needing_authentication_says_so_and_keeps_the_holds(stack: Stack) -> None:
    (sku,) = await stack.product(stock=3)
    auth, cart = await filled_cart(stack, sku, 1)
    order = (await pay(stack, auth, cart, "pm_card_authenticationRequired")).json()
    assert order["status"] == "requires_action"
    assert order["failure"]["code"] == "authentication_required"
    assert await stack.stock(sku) == (3, 1, 0)


async def test_an_empty_or_foreign_cart_cannot_be_checked_out(stack: Stack) -> None:
    auth = await stack.session()
    cart = await stack.cart(auth)
    r = await pay(stack, auth, cart, "pm_card_visa")
    assert r.status_code == 409 and "holds nothing" in r.json()["message"]
    stranger = await stack.session()
    r = await pay(stack, stranger, cart, "pm_card_visa", key="s1")
    assert r.status_code == 404
    assert stack.gateway.charges == {}


@pytest.mark.parametrize(
    "token",
    ["4242424242424242", "4242 4242 4242 4242", "pm_card visa", "", "card_visa", "pm_" + "a" * 90],
)
async def test_anything_but_a_payment_token_is_refused_before_any_charge(
    stack: Stack, token: str
) -> None:
    (sku,) = await stack.product(stock=2)
    auth, cart = await filled_cart(stack, sku)
    r = await pay(stack, auth, cart, token)
    assert r.status_code == 422, r.text
    assert token not in r.text or not token  # the number is not echoed back
    assert stack.gateway.charges == {}
    assert await stack.stock(sku) == (2, 1, 0)


async def test_an_expired_hold_fails_the_checkout_without_charging(settings: Settings) -> None:
    async with open_stack(settings, default_ttl_s=1.0) as stack:
        (sku,) = await stack.product(stock=2)
        auth, cart = await filled_cart(stack, sku)
        await asyncio.sleep(1.3)
        r = await pay(stack, auth, cart, "pm_card_visa")
        assert r.status_code == 409, r.text
        assert stack.gateway.charges == {}


async def test_order_events_stream_history_then_live_updates_until_a_final_status(
    stack: Stack,
) -> None:
    (sku,) = await stack.product(stock=2)
    auth, cart = await filled_cart(stack, sku)
    order = (await pay(stack, auth, cart, "pm_card_visa")).json()
    async with stack.orders.stream("GET", f"/{order['order_id']}/events", headers=auth) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        body = (await r.aread()).decode()
    statuses = [
        json.loads(line[len("data: ") :])["status"]
        for line in body.splitlines()
        if line.startswith("data: ")
    ]
    assert statuses == ["pending_payment", "paid"]
    assert "id: " in body


async def test_a_follower_sees_a_pending_order_settle_live(stack: Stack) -> None:
    """The live part of the stream (httpx's in-process transport buffers whole responses, so
    this drives the stream's generator; tests/e2e follows it over real HTTP)."""
    (sku,) = await stack.product(stock=2)
    auth, cart = await filled_cart(stack, sku)
    order = (await pay(stack, auth, cart, "pm_card_unavailable")).json()
    seen: list[str] = []

    async def follow() -> None:
        async for chunk in orders_api._follow(stack.ctx, order["order_id"], 0):
            if chunk.startswith("id: "):
                seen.append(json.loads(chunk.split("data: ", 1)[1])["status"])

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.3)
    assert seen == ["pending_payment", "payment_pending"]
    # The gateway answers again: resuming settles the order (the payments issue's worker
    # does this), and the follower hears it at once, not at its next keep-alive.
    stored = await stack.ctx.repo.order(order["order_id"])
    assert stored is not None and stack.ctx.checkout is not None
    stack.gateway.charges.clear()
    await stack.ctx.checkout.resume(replace(stored, payment_token="pm_card_visa"))
    await asyncio.wait_for(task, 3)
    assert seen == ["pending_payment", "payment_pending", "paid"]
    assert await stack.stock(sku) == (2, 0, 1)


async def test_a_quiet_follower_waits_on_redis_without_errors_and_still_hears_at_once(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Silence longer than the Redis client's 1 s socket timeout: the waits must stay under
    it (a 15 s XREAD BLOCK was cut off as an error, logged, and PostgreSQL polled instead)."""
    (sku,) = await stack.product(stock=2)
    auth, cart = await filled_cart(stack, sku)
    order = (await pay(stack, auth, cart, "pm_card_unavailable")).json()
    seen: list[tuple[float, str]] = []

    async def follow() -> None:
        async for chunk in orders_api._follow(stack.ctx, order["order_id"], 0):
            if chunk.startswith("id: "):
                status = json.loads(chunk.split("data: ", 1)[1])["status"]
                seen.append((time.monotonic(), status))

    with caplog.at_level(logging.WARNING, logger=orders_api.__name__):
        task = asyncio.create_task(follow())
        await asyncio.sleep(2.5)
        assert [s for _, s in seen] == ["pending_payment", "payment_pending"]
        stored = await stack.ctx.repo.order(order["order_id"])
        assert stored is not None and stack.ctx.checkout is not None
        stack.gateway.charges.clear()
        settled_at = time.monotonic()
        await stack.ctx.checkout.resume(replace(stored, payment_token="pm_card_visa"))
        await asyncio.wait_for(task, 3)
    assert seen[-1][1] == "paid" and seen[-1][0] - settled_at < 1.0
    assert messages_of(caplog, orders_api.__name__) == []


async def test_order_ids_that_are_malformed_or_not_yours_are_4xx(stack: Stack) -> None:
    auth = await stack.session()
    assert (await stack.orders.get("/o_aaaa", headers=auth)).status_code == 404
    assert (await stack.orders.get("/bad id", headers=auth)).status_code in (404, 422)
    assert (await stack.orders.get("/?limit=0", headers=auth)).status_code == 422
    r = await stack.orders.post("/", json={"cart_id": "c_1", "extra": 1}, headers=auth)
    assert r.status_code == 422
