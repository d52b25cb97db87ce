"""Payments on the Serve stack over real HTTP: the orders, webhooks and Payments deployments
paying through two localstripe accounts, and the payments worker actor settling an order
whose charge got no answer."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import ray

from tests.e2e.conftest import Served
from tests.e2e.test_serve_http import new_product, stock_of
from tests.integration.test_payments_support import LocalStripe, stripe_settings, two_accounts

pytestmark = pytest.mark.e2e


# The apps whose replicas read the payment settings. Only these get them, so a redeploy
# restarts only these: Serve leaves an app whose config is unchanged running, and a full
# redeploy of the eight apps, there and back, cost this module about 110 s.
PAYING_APPS = ("orders", "webhooks")


def paying_through(base: Any, paying: Any, port: int) -> dict[str, Any]:
    """The served stack's config (``base``), with ``paying``'s settings in the paying apps."""
    from cluster.serving import load_config

    config = load_config(settings=base.payload(), port=port)
    for app in config["applications"]:
        if app["name"] in PAYING_APPS:
            app["args"]["settings"] = {**app["args"]["settings"], **paying.payload()}
    return config


@pytest.fixture(scope="module")
def stripe_served(served: Served) -> Iterator[tuple[Served, LocalStripe, LocalStripe]]:
    """The same Serve stack redeployed to pay through localstripe; put back afterwards."""
    from actors.payments_worker import start_payments_worker, stop_payments_worker
    from cluster.serving import deploy

    port = int(served.base.rsplit(":", 1)[1])
    with two_accounts() as (primary, backup):
        extra = stripe_settings(
            served.settings, primary, backup,
            stripe_timeout_s=1.0, payment_settle_grace_s=1.0, payment_retry_base_s=0.5,
            payment_retry_max_s=2.0, payment_worker_poll_s=0.3,
            # The worker's own breakers open during the test's outage; on a loaded machine
            # the default 30 s before a trial ate most of the time the test waits.
            breaker_reset_s=2.0,
        )  # fmt: skip
        s = type(served.settings)(**{**served.settings.payload(), **extra})
        deploy(paying_through(served.settings, s, port), say=lambda _: None)
        worker = start_payments_worker(s)
        deadline = time.monotonic() + 60
        while ray.get(worker.stats.remote())["running"] != 1:
            assert time.monotonic() < deadline, "the payments worker never started"
            time.sleep(0.2)
        try:
            yield Served(s, served.base), primary, backup
        finally:
            stop_payments_worker(s)
            deploy(paying_through(served.settings, served.settings, port), say=lambda _: None)


async def checkout(served: Served, sku: str, token: str, key: str) -> dict[str, Any]:
    async with served.client("/api/shop") as shop, served.client("/api/orders") as orders:
        token_body = (await shop.post("/session")).json()
        auth = {"Authorization": f"Bearer {token_body['token']}"}
        cart = (await shop.post("/carts", headers=auth)).json()["cart_id"]
        r = await shop.post(f"/carts/{cart}/items", json={"sku": sku, "qty": 1}, headers=auth)
        assert r.status_code == 201, r.text
        r = await orders.post(
            "/", json={"cart_id": cart, "payment_token": token},
            headers={**auth, "Idempotency-Key": key},
        )  # fmt: skip
        assert r.status_code in (201, 422), r.text
        body: dict[str, Any] = r.json()
        body["_auth"] = auth
        return body


def why_unsettled(served: Served, order_id: str) -> str:
    """What the worker, its queue and the attempts say: a failure here must explain itself."""
    from actors.payments_worker import WORKER_NAME

    worker = ray.get_actor(WORKER_NAME, namespace=served.settings.namespace)
    lines = [f"worker: {ray.get(worker.stats.remote())}"]
    with psycopg.connect(served.settings.database_url) as conn:
        for table, columns in (
            ("orders", "status, attempts, updated_at"),
            ("payment_queue", "tries, next_at, last_error"),
            ("payment_attempts", "attempt, gateway, intent_id, status, error, updated_at"),
            ("order_events", "status, detail, at"),
        ):
            rows = conn.execute(
                f"SELECT {columns} FROM {table} WHERE order_id = %s",
                (order_id,),
            ).fetchall()
            lines += [f"{table}: {row}" for row in rows] or [f"{table}: none"]
    return "\n".join(lines)


async def test_checkout_over_http_pays_through_stripe_and_a_decline_releases_the_stock(
    stripe_served: tuple[Served, LocalStripe, LocalStripe],
) -> None:
    served, primary, _ = stripe_served
    _, sku = await new_product(served, stock=3)
    paid = await checkout(served, sku, "pm_card_visa", "e2e-pay")
    assert (paid["status"], paid["gateway"]) == ("paid", "stripe-primary"), paid
    assert primary.by_order()[paid["order_id"]] == {"succeeded": 1}
    declined = await checkout(served, sku, "pm_card_chargeCustomerFail", "e2e-decline")
    assert declined["status"] == "payment_failed"
    assert await stock_of(served, sku) == (3, 0, 1)
    refused = await checkout(served, sku, "4242 4242 4242 4242", "e2e-pan")
    assert refused["code"] == "card_data_refused"


async def test_an_unanswered_charge_is_settled_by_the_worker_actor_and_streamed(
    stripe_served: tuple[Served, LocalStripe, LocalStripe],
) -> None:
    served, primary, backup = stripe_served
    _, sku = await new_product(served, stock=2)
    primary.pause()
    backup.pause()
    try:
        order = await checkout(served, sku, "pm_card_visa", "e2e-lost")
    finally:
        primary.resume()
        backup.resume()
    assert order["status"] == "payment_pending", order
    deadline = time.monotonic() + 90
    async with served.client("/api/orders") as orders:
        while time.monotonic() < deadline:
            now = (await orders.get(f"/{order['order_id']}", headers=order["_auth"])).json()
            if now["status"] != "payment_pending":
                break
            await asyncio.sleep(0.5)
        assert now["status"] == "paid", why_unsettled(served, order["order_id"])
        async with orders.stream(
            "GET", f"/{order['order_id']}/events", headers=order["_auth"]
        ) as r:
            body = (await r.aread()).decode()
    events = [json.loads(x[6:]) for x in body.splitlines() if x.startswith("data: ")]
    assert [e["status"] for e in events][-2:] == ["payment_pending", "paid"]
    assert "do not pay again" in events[-2]["detail"]["message"].lower()
    seen = {**primary.by_order(), **backup.by_order()}
    succeeded = sum(
        c["succeeded"] for server in (primary, backup)
        for o, c in server.by_order().items() if o == order["order_id"]
    )  # fmt: skip
    assert succeeded == 1, seen
    assert await stock_of(served, sku) == (2, 0, 1)


async def test_webhooks_app_is_deployed_and_verifies_signatures(
    stripe_served: tuple[Served, LocalStripe, LocalStripe],
) -> None:
    served, _, _ = stripe_served
    async with served.client("/api/webhooks") as hooks:
        r = await hooks.post("/stripe/primary", content=b"{}", headers={"Stripe-Signature": "t=1"})
        assert r.status_code == 400
        assert (await hooks.get("/healthz")).status_code == 200


async def settled_stock(
    served: Served, sku: str, expected: tuple[int, int, int], within_s: float = 15.0
) -> tuple[int, int, int]:
    """The SKU's stock once it reads ``expected``, or what it reads after ``within_s``."""
    deadline = time.monotonic() + within_s
    while (now := await stock_of(served, sku)) != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return now


def sql(served: Served, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(served.settings.database_url, autocommit=True) as conn:
        cur = conn.execute(statement, args)
        return cur.fetchall() if cur.description else []


async def test_an_order_unanswered_past_its_deadline_fails_and_late_authorisations_are_voided(
    stripe_served: tuple[Served, LocalStripe, LocalStripe],
) -> None:
    """Issue 13, item 7, on the Serve stack with the worker actor: both accounts hang, the
    order stays payment_pending; at its deadline it fails as payment_timeout (shown by the
    order API), and the authorisations the accounts made late are cancelled and logged as
    suspicious; nothing is ever captured."""
    served, primary, backup = stripe_served
    for attempt in range(3):
        _, sku = await new_product(served, stock=2)  # a paid attempt's sale stays with its own
        primary.pause()
        backup.pause()
        try:
            order = await checkout(served, sku, "pm_card_visa", f"e2e-deadline-{attempt}")
            assert order["status"] == "payment_pending", order
            oid = order["order_id"]
            # Time passes: the deadline is now (moved, not waited for), before either account
            # answers, so no retry can find their authorisations first. On a busy machine a
            # retry has been seen to pay the order before this statement ran (the scenario
            # did not happen, nothing wrong with that); then the test starts it again.
            # Nor must a payment have been claimed already (it then goes through, by design);
            # one claimed after this statement is refused, being past pay_by.
            moved = sql(
                served, "UPDATE orders SET pay_by = now() - interval '1 s'"
                " WHERE order_id = %s AND status = 'payment_pending' AND NOT EXISTS"
                " (SELECT 1 FROM payment_captures c WHERE c.order_id = orders.order_id)"
                " RETURNING order_id", oid,
            )  # fmt: skip
        finally:
            primary.resume()  # they wake and authorise what they had queued: late
            backup.resume()
        if moved:
            break
    assert moved, "the order was paid before its deadline could be moved, three times"
    sql(served, "UPDATE payment_queue SET next_at = now() WHERE order_id = %s", oid)
    async with served.client("/api/orders") as orders:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            now = (await orders.get(f"/{oid}", headers=order["_auth"])).json()
            if now["status"] != "payment_pending":
                break
            await asyncio.sleep(0.5)
    assert now["status"] == "payment_failed", why_unsettled(served, oid)
    assert now["failure"]["code"] == "payment_timeout" and "Nothing was charged" in str(now)
    # The order turns failed first (that update decides who releases), then its holds go.
    assert await settled_stock(served, sku, (2, 0, 0)) == (2, 0, 0)
    # The worker's sweep takes attempts older than its stray_after_s: made older here, once
    # the accounts have had time to process what they queued (a sweep that finds nothing
    # marks the attempt not_found: ADR 0008's consequences). Whether a create reached an
    # account depends on its breaker in the Payments replica (a timed-out card-fingerprint
    # lookup may have opened both): whatever reached one must end cancelled.
    await asyncio.sleep(2.0)
    sql(
        served, "UPDATE payment_attempts SET updated_at = now() - interval '1 h'"
        " WHERE order_id = %s", oid,
    )  # fmt: skip
    open_statuses = "('started', 'requires_capture', 'requires_action', 'unknown')"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and sql(
        served, f"SELECT 1 FROM payment_attempts WHERE order_id = %s AND status IN {open_statuses}",
        oid,
    ):  # fmt: skip
        await asyncio.sleep(0.5)
    seen = Counter(
        status for server in (primary, backup) for status, n in
        server.by_order().get(oid, {}).items() for _ in range(n)
    )  # fmt: skip
    assert set(seen) <= {"canceled"}, (seen, why_unsettled(served, oid))
    kinds = sql(served, "SELECT kind FROM suspicious_activity WHERE order_id = %s", oid)
    assert [k for (k,) in kinds] == ["late_authorisation_cancelled"] * seen["canceled"]
    assert sql(served, "SELECT 1 FROM payment_captures WHERE order_id = %s", oid) == []
