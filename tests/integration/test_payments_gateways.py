"""Every process that pays builds its gateway in one way (``bootstrap.open_gateway``): the
Payments deployment, the webhooks and the payments worker charge through routers over the
same Stripe accounts, in the same region, with the same breakers and timeouts.

The regression (issue 14): the webhooks built their router over payment records without
``payment_region``, so an attempt they started (a webhook resuming an order whose first
charge never reached Stripe) was written in region ``local``, and the payments report split
that success away from the region everyone else reported.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

import actors.client
from actors.payments_worker import PaymentsWorkerActor
from matchday import bootstrap
from matchday.domain.errors import Unavailable
from matchday.inventory.client import InventoryClient
from matchday.payments.gateway import ChargeRequest, ChargeResult, PaymentGateway, RefundResult
from matchday.payments.router import PaymentRouter
from matchday.payments.stripe_gateway import StripeGateway
from matchday.settings import Settings
from matchday.shop import models as st
from serve.payments import Payments
from serve.webhooks import WebhooksAPI
from tests.background import stop
from tests.conftest import database_of_its_own, uid
from tests.integration.test_payments_support import (
    LocalStripe,
    PayStack,
    filled_cart,
    open_pay_stack,
    pay,
    two_accounts,
)
from tests.integration.test_payments_webhooks import signed

pytestmark = pytest.mark.integration

REGION = "eu-west-test"
Opened = tuple[PaymentGateway, Callable[[], Awaitable[None]]]


@pytest.fixture(scope="module")
def accounts() -> Iterator[tuple[LocalStripe, LocalStripe]]:
    with two_accounts() as both:
        yield both


@pytest.fixture(scope="module")
def own(settings: Settings) -> Iterator[Settings]:
    """A database of this module's own: the worker actor below claims every due order."""
    with database_of_its_own(settings, "gateways") as s:
        yield s


@pytest.fixture
async def ps(own: Settings, accounts: tuple[LocalStripe, LocalStripe]):
    more = {
        "payment_region": REGION,
        # One shard, as the stack's in-process engine has: the deployments below reach it.
        "shards": 1,
        "dedicated_shards": 0,
        # The worker picks an order up at once, and looks for work often.
        "payment_settle_grace_s": 0.0,
        "payment_worker_poll_s": 0.1,
    }
    async with open_pay_stack(own, *accounts, **more) as s:
        yield s


def never() -> PaymentGateway:
    raise AssertionError("a process paying through Stripe never asks for the test gateway")


async def payments(s: Settings, stock: InventoryClient) -> Opened:
    """The Payments deployment's replica, started by its own ``__init__`` (without Ray)."""
    replica = object.__new__(Payments.func_or_class)
    await replica.__init__(s.payload())

    async def close() -> None:
        await stop(replica._sampler)  # on Ray, it ends with the replica's process
        await replica.__del__()

    return replica.gateway, close


async def webhooks(s: Settings, stock: InventoryClient) -> Opened:
    parts = await bootstrap.open_webhooks(s, stock, test_gateway=never)
    return parts.ctx.checkout.gateway, parts.close


async def worker(s: Settings, stock: InventoryClient) -> Opened:
    parts = await bootstrap.open_payments_worker(s, stock, test_gateway=never)
    return parts.gateway, parts.close


ROLES = {"payments": payments, "webhooks": webhooks, "worker": worker}


@pytest.fixture
async def opened(ps: PayStack) -> AsyncIterator[dict[str, PaymentGateway]]:
    gateways, closes = {}, []
    try:
        for role, opening in ROLES.items():
            gateways[role], close = await opening(ps.stack.ctx.settings, ps.stack.ctx.stock)
            closes.append(close)
        yield gateways
    finally:
        for close in closes:
            await close()


def configuration(gateway: PaymentGateway) -> dict[str, Any]:
    """What decides where and how a charge is made: accounts, region, breakers, timeouts."""
    assert isinstance(gateway, PaymentRouter)
    return {
        "region": gateway.region,
        "call_timeout_s": gateway.call_timeout_s,
        "breakers": {n: (b.failures, b.reset_s) for n, b in gateway.breakers.items()},
        "accounts": {name: account(g) for name, g in gateway.gateways.items()},
    }


def account(gateway: PaymentGateway) -> tuple[Any, ...]:
    assert isinstance(gateway, StripeGateway)
    http = gateway.client._requestor._client
    return (
        gateway.attempts.region,
        gateway.timeout_s,
        gateway.capture_method,
        tuple(gateway.payment_method_types),
        gateway.client._requestor.base_addresses["api"],
        http._timeout,
    )


async def regions_of(ps: PayStack, order_id: str) -> dict[str, str]:
    async with ps.payments.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT gateway, region FROM payment_attempts WHERE order_id = %s", (order_id,)
            )
        ).fetchall()
    return dict(rows)


async def test_every_process_that_pays_builds_the_same_router(
    ps: PayStack, opened: dict[str, PaymentGateway]
) -> None:
    ours = configuration(opened["payments"])
    assert ours["region"] == REGION
    assert {a[0] for a in ours["accounts"].values()} == {REGION}
    assert set(ours["accounts"]) == {"stripe-primary", "stripe-backup"}
    for role in ("webhooks", "worker"):
        assert configuration(opened[role]) == ours, role


@pytest.mark.parametrize("role", list(ROLES))
async def test_each_process_writes_its_attempts_in_the_configured_region(
    ps: PayStack, opened: dict[str, PaymentGateway], role: str
) -> None:
    (sku,) = await ps.stack.product(stock=2)
    auth, cart = await filled_cart(ps.stack, sku)
    ps.stack.ctx.checkout.gateway = opened[role]
    order = (await pay(ps.stack, auth, cart, "pm_card_visa")).json()
    assert order["status"] == "paid", order
    assert await regions_of(ps, order["order_id"]) == {"stripe-primary": REGION}


class NeverSent:
    """The charge never reached Stripe (a connection refused before it was sent)."""

    name = "unsent"

    async def charge(self, req: ChargeRequest) -> ChargeResult:
        raise Unavailable("connection refused")

    async def refund(self, ref: str, amount: int, key: str) -> RefundResult:
        raise Unavailable("connection refused")


class ShardHandle:
    """A shard actor's handle over the stack's in-process engine, for a deployment or actor
    run as on Ray (reaching the shards through ``actors.client``) but without Ray. From
    another thread's event loop, the call is handed to the stack's."""

    def __init__(self, stock: InventoryClient) -> None:
        home = asyncio.get_running_loop()

        def remote(batch: Any) -> Awaitable[Any]:
            if asyncio.get_running_loop() is home:
                return stock._send(0, batch)
            return asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(stock._send(0, batch), home)
            )

        self.apply = SimpleNamespace(remote=remote)


async def test_a_charge_the_webhooks_deployment_starts_is_written_in_the_configured_region(
    ps: PayStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The webhooks deployment as Serve starts it (its class's own ``__init__``, without
    Ray): a webhook about an order whose first charge never reached Stripe resumes it, and
    the deployment's own router makes the charge."""
    (sku,) = await ps.stack.product(stock=2)
    auth, cart = await filled_cart(ps.stack, sku)
    ps.stack.ctx.checkout.gateway = NeverSent()
    order = (await pay(ps.stack, auth, cart, "pm_card_visa")).json()
    assert order["status"] == st.AMBIGUOUS, order
    assert await regions_of(ps, order["order_id"]) == {}

    handles = {0: ShardHandle(ps.stack.ctx.stock)}
    monkeypatch.setattr(actors.client, "shard_handles", lambda _settings: handles)
    # @serve.ingress subclasses the deployment's class; its first base is ours.
    replica_cls = WebhooksAPI.func_or_class.__bases__[0]
    replica = object.__new__(replica_cls)
    await replica.__init__(ps.stack.ctx.settings.payload())
    try:
        app = replica.__serve_build_asgi_app__()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, root_path="/api/webhooks"),
            base_url="http://shop.test/api/webhooks",
        ) as hooks:
            intent = {"id": uid("pi"), "metadata": {"matchday_order": order["order_id"]}}
            payload = json.dumps(
                {
                    "id": uid("evt"),
                    "object": "event",
                    "type": "payment_intent.payment_failed",
                    "data": {"object": intent},
                }
            )
            secret = ps.stack.ctx.settings.stripe_webhook_secret.get_secret_value()
            r = await hooks.post(
                "/stripe/primary", content=payload, headers=signed(payload, secret)
            )
            assert r.status_code == 200 and r.json()["outcome"] == "order_paid", r.text
    finally:
        await replica.__del__()
    assert await regions_of(ps, order["order_id"]) == {"stripe-primary": REGION}


async def test_the_worker_actor_settles_an_order_through_the_gateway_bootstrap_built(
    ps: PayStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The payments-worker actor as Ray hosts it (its loop on a thread of its own), without
    Ray: an order whose first charge never reached Stripe is charged and settled by it."""
    (sku,) = await ps.stack.product(stock=2)
    auth, cart = await filled_cart(ps.stack, sku)
    ps.stack.ctx.checkout.gateway = NeverSent()
    order = (await pay(ps.stack, auth, cart, "pm_card_visa")).json()
    assert order["status"] == st.AMBIGUOUS, order

    handles = {0: ShardHandle(ps.stack.ctx.stock)}
    monkeypatch.setattr(actors.client, "shard_handles", lambda _settings: handles)
    actor = PaymentsWorkerActor(ps.stack.ctx.settings.payload())
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while (await ps.stack.ctx.repo.order(order["order_id"])).status != st.PAID:
            assert asyncio.get_running_loop().time() < deadline, actor.stats()
            await asyncio.sleep(0.1)
        assert actor.stats()["running"] == 1 and actor.restarts == 0
    finally:
        actor.stop()
        await asyncio.to_thread(actor._thread.join, 30)
    assert not actor._thread.is_alive()
    assert await regions_of(ps, order["order_id"]) == {"stripe-primary": REGION}
