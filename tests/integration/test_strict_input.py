"""Loose JSON is refused in every app (issue 13.8): booleans, strings and floats are not
quantities or money, duplicate keys, byte-order marks and UTF-16 bodies are 422s that name
the problem, and nothing changes. In-process apps on real PostgreSQL, Redis and shard core."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from matchday.settings import Settings
from tests.integration.test_polls_api import Polls, open_polls

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")  # one stack: tests/integration/shop_stack.py
async def polls(settings: Settings) -> AsyncIterator[Polls]:
    async with open_polls(settings) as p:
        yield p


async def refused(r: httpx.Response, *words: str) -> None:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "invalid_input" and body["retryable"] is False
    for word in words:
        assert word in body["message"], body


@pytest.mark.parametrize(
    ("qty", "why"),
    [(True, "valid integer"), ("1", "valid integer"), (1.0, "valid integer"), (None, "integer")],
)
async def test_a_quantity_must_be_a_json_integer(polls: Polls, qty: Any, why: str) -> None:
    stack = polls.admin.stack
    (sku,) = await stack.product(stock=5)
    auth = await stack.session()
    cart = await stack.cart(auth)
    r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku, "qty": qty}, headers=auth)
    await refused(r, "qty", why)
    r = await stack.shop.put(f"/carts/{cart}/items/{sku}", json={"qty": qty}, headers=auth)
    assert r.status_code == 422, r.text
    assert await stack.stock(sku) == (5, 0, 0)


ONE = '{{"sku": "{sku}", "qty": 1}}'
TWICE = '{{"sku": "{sku}", "qty": 1, "qty": 100}}'


@pytest.mark.parametrize(
    ("template", "encode", "why"),
    [
        (ONE, str.encode, None),  # the control: accepted
        (TWICE, str.encode, "duplicate key 'qty'"),
        (ONE, lambda text: b"\xef\xbb\xbf" + text.encode(), "byte-order mark"),
        (ONE, lambda text: text.encode("utf-16"), "not UTF-8"),
        (ONE, lambda text: text.encode("utf-16-le"), "NUL byte"),
    ],
)
async def test_an_ambiguous_add_body_holds_nothing(
    polls: Polls, template: str, encode: Any, why: str | None
) -> None:
    stack = polls.admin.stack
    (sku,) = await stack.product(stock=200)
    auth = await stack.session()
    cart = await stack.cart(auth)
    body = encode(template.format(sku=sku))
    r = await stack.shop.post(f"/carts/{cart}/items", content=body, headers={**auth, **JSON})
    if why is None:
        assert r.status_code == 201, r.text
        assert await stack.stock(sku) == (200, 1, 0)
        return
    await refused(r, "body: invalid JSON", why)
    assert await stack.stock(sku) == (200, 0, 0)


async def test_checkout_and_votes_refuse_duplicate_keys(polls: Polls) -> None:
    stack = polls.admin.stack
    auth = await stack.session()
    cart = await stack.cart(auth)
    body = f'{{"cart_id": "{cart}", "cart_id": "c_other", "payment_token": "pm_card_visa"}}'
    r = await stack.orders.post("/", content=body, headers={**auth, **JSON})
    await refused(r, "duplicate key 'cart_id'")
    poll = await polls.create()
    fan = await polls.shopper()
    vote = '{"option_id": "o1", "option_id": "o2"}'
    r = await polls.http.post(f"/{poll['poll_id']}/votes", content=vote, headers={**fan, **JSON})
    await refused(r, "duplicate key 'option_id'")
    assert (await polls.http.get(f"/{poll['poll_id']}")).json()["total"] == 0


@pytest.mark.parametrize("qty", [True, "5", 5.0])
async def test_admin_stock_and_money_fields_are_strict(polls: Polls, qty: Any) -> None:
    admin, session = polls.admin, polls.session
    (sku,) = await admin.stack.product(stock=10)
    r = await admin.http.post(f"/stock/{sku}/restock", json={"qty": qty}, headers=session)
    await refused(r, "qty")
    r = await admin.http.put(f"/stock/{sku}", json={"units": qty}, headers=session)
    await refused(r, "units")
    r = await admin.http.post(
        "/orders/o_abcdefg/refund", json={"amount_cents": qty}, headers=session
    )
    await refused(r, "amount_cents")
    assert await admin.stack.stock(sku) == (10, 0, 0)


async def test_catalogue_and_poll_numbers_are_strict(polls: Polls) -> None:
    admin, session = polls.admin, polls.session
    product = {
        "slug": "strict-kit", "name": "Strict kit", "category": "jerseys", "price_cents": 100,
        "image_url": "/static/img/strict-kit.svg",
        "variants": [{"sku": "STRICT-KIT-M", "size": "M", "initial_stock": 1}],
    }  # fmt: skip
    loose = [("per_customer_limit", "2"), ("featured_rank", 1.0), ("price_cents", True)]
    for field, value in loose:
        r = await admin.http.post("/products", json={**product, field: value}, headers=session)
        await refused(r, field)
    r = await admin.http.post("/categories", json={"slug": "c", "name": "C", "position": True},
                              headers=session)  # fmt: skip
    await refused(r, "position")
    poll = {"question": "Q?", "placement": "checkout", "options": [{"label": "A"}, {"label": "B"}]}
    r = await admin.http.post("/polls", json={**poll, "closes_at": "99999999"}, headers=session)
    await refused(r, "closes_at")
    twice = json.dumps(poll)[:-1] + ', "question": "Other?"}'
    r = await admin.http.post("/polls", content=twice, headers={**session, **JSON})
    await refused(r, "duplicate key 'question'")
    r = await admin.http.post("/products", json=product, headers=session)  # the control
    assert r.status_code == 201, r.text
