"""Velocity holds for review, operator decisions, and refunds (through localstripe and the
admin routes of matchday/web/admin_refunds.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from matchday.payments.fraud import FraudRules, VelocityLimits
from matchday.settings import Settings
from matchday.shop import models as st
from matchday.web import admin_refunds, errors
from tests.integration.test_payments_support import (
    LocalStripe,
    PayStack,
    filled_cart,
    open_pay_stack,
    pay,
    two_accounts,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def accounts() -> Iterator[tuple[LocalStripe, LocalStripe]]:
    with two_accounts() as both:
        yield both


@pytest.fixture
async def ps(settings: Settings, accounts: tuple[LocalStripe, LocalStripe]):
    async with open_pay_stack(settings, *accounts) as s:
        yield s


class OpenGate:
    """The admin gate's shape without sessions: every call allowed, keys passed through."""

    def require(self, action: str | None) -> Any:
        async def check() -> str:
            return action or "read"

        return check

    async def run(self, request: Request, call: Any, params: Any, produce: Any) -> JSONResponse:
        status, body = await produce(request.headers.get("idempotency-key", "k"))
        return JSONResponse(body, status_code=status)


def admin_client(ps: PayStack) -> httpx.AsyncClient:
    app = FastAPI()
    errors.install(app)
    app.include_router(admin_refunds.router(OpenGate(), ps.stack.ctx))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin.test")


async def test_a_customer_over_the_velocity_limit_is_held_for_review_before_any_charge(
    ps: PayStack,
) -> None:
    checkout = ps.stack.ctx.checkout
    assert checkout is not None
    checkout.fraud = FraudRules(ps.payments, VelocityLimits(per_customer=2))
    (sku,) = await ps.stack.product(stock=10)
    auth = await ps.stack.session()
    statuses = []
    for n in range(4):
        cart = await ps.stack.cart(auth)
        r = await ps.stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=auth)
        assert r.status_code == 201
        statuses.append((await pay(ps.stack, auth, cart, "pm_card_visa", key=f"v{n}")).json())
    assert [o["status"] for o in statuses] == ["paid", "paid", "review", "review"]
    held, rejected = statuses[2]["order_id"], statuses[3]["order_id"]
    assert ps.primary.by_order().get(held) is None  # never charged
    assert await ps.stack.stock(sku) == (10, 2, 2)  # held orders keep their units
    kinds = [k for k, _ in await ps.payments.suspicious_of(held)]
    assert kinds == ["velocity_hold"]
    events = await ps.stack.ctx.repo.order_events(held)
    assert "velocity" not in str(events)  # the customer is not told which rule
    async with admin_client(ps) as admin:
        r = await admin.post(f"/orders/{held}/review", json={"decision": "approve"})
        assert r.status_code == 200 and r.json()["status"] == "paid", r.text
        assert set(r.json()) == set(statuses[2])  # the order, as its shopper sees it
        r = await admin.post(f"/orders/{rejected}/review", json={"decision": "reject"})
        assert r.json()["status"] == "cancelled"
        r = await admin.post(f"/orders/{rejected}/review", json={"decision": "approve"})
        assert r.status_code == 409
    assert await ps.stack.stock(sku) == (10, 0, 3)
    checkout.fraud = None


async def test_admin_refunds_are_partial_or_full_and_idempotent(ps: PayStack) -> None:
    (sku,) = await ps.stack.product(stock=5, price=3000)
    auth, cart = await filled_cart(ps.stack, sku)
    order = (await pay(ps.stack, auth, cart, "pm_card_visa")).json()
    oid, ref = order["order_id"], order["payment_ref"]
    async with admin_client(ps) as admin:
        part = {"Idempotency-Key": "refund-1"}
        r = await admin.post(f"/orders/{oid}/refund", json={"amount_cents": 1000}, headers=part)
        assert r.status_code == 200 and r.json()["status"] == "paid", r.text
        assert set(r.json()) == set(order)  # the order, as its shopper sees it
        again = await admin.post(f"/orders/{oid}/refund", json={"amount_cents": 1000}, headers=part)
        assert again.status_code == 200 and set(again.json()) == set(order)
        too_much = await admin.post(
            f"/orders/{oid}/refund", json={"amount_cents": 2500}, headers={"Idempotency-Key": "r2"}
        )
        assert too_much.status_code == 422
        rest = await admin.post(
            f"/orders/{oid}/refund", json={"amount_cents": None}, headers={"Idempotency-Key": "r3"}
        )
        assert rest.json()["status"] == "refunded"
        none_left = await admin.post(
            f"/orders/{oid}/refund", json={}, headers={"Idempotency-Key": "r4"}
        )
        assert none_left.status_code == 409
    refunds = ps.primary.client().v1.refunds.list(params={"payment_intent": ref})
    assert sorted(x.amount for x in refunds.data) == [1000, 2000]  # the retry refunded nothing
    history = [e["status"] for e in await ps.stack.ctx.repo.order_events(oid)]
    assert history[-1] == st.REFUNDED


async def test_operators_see_how_an_orders_payment_went(ps: PayStack) -> None:
    (sku,) = await ps.stack.product(stock=5, price=3000)
    auth, cart = await filled_cart(ps.stack, sku)
    order = (await pay(ps.stack, auth, cart, "pm_card_visa")).json()
    oid = order["order_id"]
    async with admin_client(ps) as admin:
        story = (await admin.get(f"/orders/{oid}/payment")).json()
        missing = await admin.get("/orders/o_aaaaaaaaaaaaaaaaaaaaaaaa/payment")
    assert story["order"]["status"] == "paid" and story["order"]["pay_by"] is not None
    assert set(story) == {"order", "deadline", "attempts", "queue", "capture", "suspicious"}
    assert set(story["order"]) == set(order)
    assert [set(a) for a in story["attempts"]] == [
        {"attempt", "gateway", "intent", "status", "error", "risk_level"}
    ]
    assert story["deadline"] == story["order"]["pay_by"]
    assert [(a["gateway"], a["intent"], a["status"]) for a in story["attempts"]] == [
        ("stripe-primary", order["payment_ref"], "succeeded")
    ]
    assert story["capture"] == {"gateway": "stripe-primary", "intent": order["payment_ref"]}
    assert story["queue"] is None and story["suspicious"] == []
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
