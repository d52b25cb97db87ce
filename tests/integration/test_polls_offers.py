"""Personal offers from polls, honoured at checkout on real PostgreSQL and Redis: the right
lines discounted and the right amount charged; a foreign, used or expired code refused with
no order; one redemption under concurrent checkouts; the code given back on a failed payment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from matchday.polls.offers import OfferCodes
from matchday.settings import Settings
from tests.integration.test_polls_api import Polls, open_polls

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")  # one stack: tests/integration/shop_stack.py
async def polls(settings: Settings) -> AsyncIterator[Polls]:
    async with open_polls(settings) as p:
        yield p


async def offer_poll(polls: Polls, sku: str, percent: int = 20) -> str:
    slug = sku.rsplit("-", 1)[0].lower()
    poll = await polls.create(
        placement="checkout",
        options=[{"label": "Home", "sku": sku}, {"label": "Away"}],
        offer={"percent_off": percent, "product_slug": slug, "valid_s": 600},
    )
    assert poll["has_offer"] is True
    return str(poll["poll_id"])


async def voted(polls: Polls, pid: str) -> tuple[dict[str, str], dict[str, Any]]:
    fan = await polls.shopper()
    r = await polls.vote(pid, "o1", fan)
    assert r.status_code == 201, r.text
    return fan, r.json()["offer"]


async def fill(polls: Polls, auth: dict[str, str], *lines: tuple[str, int]) -> str:
    stack = polls.admin.stack
    cart = await stack.cart(auth)
    for sku, qty in lines:
        r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku, "qty": qty},
                                  headers=auth)  # fmt: skip
        assert r.status_code == 201, r.text
    return cart


async def pay(
    polls: Polls, auth: dict[str, str], cart: str, code: str | None, token: str = "pm_card_visa"
) -> Any:
    body = {"cart_id": cart, "payment_token": token, "offer_code": code}
    return await polls.admin.stack.orders.post("/", json=body, headers=auth)


async def test_the_offer_discounts_its_product_within_the_limit_and_is_charged_so(
    polls: Polls,
) -> None:
    stack = polls.admin.stack
    (kit,) = await stack.product(stock=10, limit=2, price=8999)
    (other,) = await stack.product(stock=10, price=2500)
    pid = await offer_poll(polls, kit, percent=20)
    fan, offer = await voted(polls, pid)
    assert offer["percent_off"] == 20 and offer["product_slug"] == kit.rsplit("-", 1)[0].lower()
    assert offer["expires_at"] > time.time() + 500
    shown = (await polls.http.get(f"/{pid}", headers=fan)).json()["offer"]
    assert shown == offer  # the same code whenever the voter looks

    cart = await fill(polls, fan, (kit, 2), (other, 1))
    r = await pay(polls, fan, cart, offer["code"])
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "paid" and order["offer_code"] == offer["code"]
    assert order["total_cents"] == 2 * 8999 + 2500
    assert order["discount_cents"] == 2 * 8999 * 20 // 100  # the kit only, not the other line
    charged = stack.gateway.captured[f"pi_test_{order['order_id']}_1"]
    assert charged == order["total_cents"] - order["discount_cents"]

    # Used: a second order with the same code is refused, and no order is made.
    cart2 = await fill(polls, fan, (other, 1))
    r = await pay(polls, fan, cart2, offer["code"])
    assert r.status_code == 409 and r.json()["code"] == "offer_invalid", r.text
    history = (await stack.orders.get("/", headers=fan)).json()["orders"]
    assert [o["order_id"] for o in history] == [order["order_id"]]


async def test_foreign_expired_forged_and_unrelated_codes_make_no_order(polls: Polls) -> None:
    stack = polls.admin.stack
    (kit,) = await stack.product(stock=10, price=5000)
    (other,) = await stack.product(stock=10, price=5000)
    pid = await offer_poll(polls, kit)
    _, offer = await voted(polls, pid)
    thief = await polls.shopper()
    cart = await fill(polls, thief, (kit, 1))
    codes = OfferCodes(stack.ctx.settings.secret_key.get_secret_value())
    thief_id = (await stack.shop.post("/session")).json()  # another shopper, for a real id
    expired = codes.issue(thief_id["customer_id"], pid, "o1", int(time.time()) - 1)
    expired_auth = {"Authorization": f"Bearer {thief_id['token']}"}
    cases = [
        (thief, offer["code"], "another shopper"),
        (thief, offer["code"][:-1] + ("a" if offer["code"][-1] != "a" else "b"), "another"),
        (thief, "not-a-code", "not an offer code"),
    ]
    for auth, code, reason in cases:
        r = await pay(polls, auth, cart, code)
        assert r.status_code in (409, 422), (code, r.text)
        if r.status_code == 409:
            assert r.json()["code"] == "offer_invalid" and reason in r.json()["message"]
    cart_e = await fill(polls, expired_auth, (kit, 1))
    r = await pay(polls, expired_auth, cart_e, expired)
    assert r.status_code == 409 and "expired" in r.json()["message"]
    # The voter's own code on a cart without the offer's product.
    voter, offer2 = await voted(polls, pid)
    cart_o = await fill(polls, voter, (other, 1))
    r = await pay(polls, voter, cart_o, offer2["code"])
    assert r.status_code == 409 and "not in this cart" in r.json()["message"]
    for auth in (thief, expired_auth, voter):
        assert (await stack.orders.get("/", headers=auth)).json()["orders"] == []
    # Refused codes leave the carts open: the same cart checks out without one.
    r = await pay(polls, voter, cart_o, None)
    assert r.status_code == 201 and r.json()["discount_cents"] == 0


async def test_concurrent_checkouts_redeem_a_code_once(polls: Polls) -> None:
    stack = polls.admin.stack
    (kit,) = await stack.product(stock=20, price=4000)
    pid = await offer_poll(polls, kit, percent=10)
    fan, offer = await voted(polls, pid)
    carts = [await fill(polls, fan, (kit, 1)) for _ in range(4)]
    answers = await asyncio.gather(*(pay(polls, fan, c, offer["code"]) for c in carts))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201, 409, 409, 409], [a.text for a in answers]
    won = [a.json() for a in answers if a.status_code == 201]
    assert won[0]["discount_cents"] == 400 and won[0]["status"] == "paid"
    assert all(a.json()["code"] == "offer_invalid" for a in answers if a.status_code == 409)
    async with stack.ctx.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT order_id FROM offer_redemptions WHERE code = %s", (offer["code"],)
            )
        ).fetchall()
    assert [r[0] for r in rows] == [won[0]["order_id"]]


async def test_a_declined_payment_gives_the_code_back(polls: Polls) -> None:
    stack = polls.admin.stack
    (kit,) = await stack.product(stock=5, price=10000)
    pid = await offer_poll(polls, kit, percent=50)
    fan, offer = await voted(polls, pid)
    cart = await fill(polls, fan, (kit, 1))
    r = await pay(polls, fan, cart, offer["code"], token="pm_card_chargeDeclined")
    assert r.status_code == 201 and r.json()["status"] == "payment_failed", r.text
    again = await fill(polls, fan, (kit, 1))
    r = await pay(polls, fan, again, offer["code"])
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "paid" and r.json()["discount_cents"] == 5000
    assert stack.gateway.captured[f"pi_test_{r.json()['order_id']}_1"] == 5000


async def test_a_quote_shows_the_discount_the_order_then_charges_and_claims_nothing(
    polls: Polls,
) -> None:
    stack = polls.admin.stack
    (kit,) = await stack.product(stock=10, limit=2, price=8999)
    (other,) = await stack.product(stock=10, price=2500)
    pid = await offer_poll(polls, kit, percent=20)
    fan, offer = await voted(polls, pid)
    cart = await fill(polls, fan, (kit, 2), (other, 1))

    async def quote(code: str | None, auth: dict[str, str] = fan) -> Any:
        return await stack.orders.post(
            "/quote", json={"cart_id": cart, "offer_code": code}, headers=auth
        )

    plain = await quote(None)
    assert plain.status_code == 200, plain.text
    assert plain.json()["discount_cents"] == 0
    assert plain.json()["charged_cents"] == plain.json()["total_cents"] == 2 * 8999 + 2500
    assert sorted((ln["sku"], ln["qty"]) for ln in plain.json()["lines"]) == sorted(
        [(kit, 2), (other, 1)]
    )
    r = await quote(offer["code"])
    assert r.status_code == 200, r.text
    quoted = r.json()
    assert (
        quoted["discount_cents"] == 2 * 8999 * 20 // 100 and quoted["offer_code"] == offer["code"]
    )
    # Quoting twice claims nothing: the order still redeems the code, for the amount quoted.
    assert (await quote(offer["code"])).json() == quoted
    order = (await pay(polls, fan, cart, offer["code"])).json()
    assert (order["status"], order["discount_cents"]) == ("paid", quoted["discount_cents"])
    assert stack.gateway.captured[f"pi_test_{order['order_id']}_1"] == quoted["charged_cents"]


async def test_a_quote_refuses_what_checkout_would_refuse(polls: Polls) -> None:
    stack = polls.admin.stack
    (kit,) = await stack.product(stock=10, price=5000)
    pid = await offer_poll(polls, kit)
    fan, offer = await voted(polls, pid)
    stranger = await polls.shopper()
    cart = await fill(polls, fan, (kit, 1))

    async def quote(body: dict[str, Any], auth: dict[str, str] = fan) -> Any:
        return await stack.orders.post("/quote", json=body, headers=auth)

    r = await quote({"cart_id": cart, "offer_code": "not-a-code"})
    assert r.status_code == 409 and r.json()["code"] == "offer_invalid", r.text
    r = await quote({"cart_id": cart, "offer_code": "Not A Code!"})
    assert r.status_code == 422, r.text
    r = await quote({"cart_id": cart}, stranger)  # someone else's cart
    assert r.status_code == 404, r.text
    assert (await stack.orders.post("/quote", json={"cart_id": cart})).status_code == 401
    await pay(polls, fan, cart, offer["code"])
    r = await quote({"cart_id": cart, "offer_code": offer["code"]})
    assert r.status_code == 409, r.text  # checked out (and the code used)
