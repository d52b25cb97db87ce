"""A Stripe that hangs (issue 13): a real localstripe frozen with SIGSTOP, not one that
refuses connections. Checkouts fail over once the primary's timeout runs out, the timeout
opens its breaker at once and nothing late closes it again, the card-fingerprint lookup is
bounded the same way, and the primary's late authorisations are cancelled and logged as
suspicious once it wakes.

Each test starts its own two localstripe processes: a frozen process must not stall the
other tests' accounts. Latencies are printed (run with -s), never asserted."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from matchday.payments.fraud import FraudRules, VelocityLimits
from matchday.settings import Settings
from matchday.shop import models as st
from matchday.shop.payments_worker import PaymentsWorker
from tests.conftest import database_of_its_own
from tests.integration.test_payments_support import (
    LocalStripe,
    PayStack,
    charges,
    filled_cart,
    open_pay_stack,
    pay,
    two_accounts,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Iterator[Settings]:
    """A database of this module's own: a payments worker's round claims every due order in
    its database, and must not meet other modules' orders (or call a gated gateway for them:
    the full suite once hung here that way)."""
    with database_of_its_own(settings, "hung") as own:
        yield own


TIMEOUT_S = 1.0


@pytest.fixture
def accounts() -> Iterator[tuple[LocalStripe, LocalStripe]]:
    with two_accounts() as both:  # stop() sends SIGCONT first: never left frozen
        yield both


def hung_stack(settings: Settings, accounts: tuple[LocalStripe, LocalStripe]) -> Any:
    """The pay stack with a short timeout and a breaker that five failures would open: so a
    breaker found open was opened by a timeout."""
    primary, backup = accounts
    return open_pay_stack(settings, primary, backup, stripe_timeout_s=TIMEOUT_S, breaker_failures=5)


async def timed_checkout(ps: PayStack, sku: str, key: str) -> tuple[dict[str, object], float]:
    auth, cart = await filled_cart(ps.stack, sku)
    began = time.monotonic()
    r = await pay(ps.stack, auth, cart, "pm_card_visa", key=key)
    took = time.monotonic() - began
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body, took


async def test_a_frozen_primary_fails_over_and_its_late_authorisations_are_voided_and_logged(
    settings: Settings, accounts: tuple[LocalStripe, LocalStripe]
) -> None:
    primary = accounts[0]
    async with hung_stack(settings, accounts) as ps:
        (sku,) = await ps.stack.product(stock=6)
        primary.pause()
        try:
            # Four at once: every one is sent to the frozen primary before any times out.
            first = await asyncio.gather(*(timed_checkout(ps, sku, f"h{n}") for n in range(4)))
            breaker = ps.router.breakers["stripe-primary"]
            assert breaker.state == "open"  # one round of timeouts, not breaker_failures
            later = [await timed_checkout(ps, sku, f"l{n}") for n in range(2)]
        finally:
            primary.resume()
        orders = [o for o, _ in first + later]
        assert {(o["status"], o["gateway"]) for o in orders} == {("paid", "stripe-backup")}
        assert ps.router.counters[("stripe-primary", "local", "unavailable")] == 4
        assert ps.router.counters[("stripe-primary", "local", "skipped")] == 2
        print(
            "frozen primary, timeout", TIMEOUT_S, "s: concurrent checkouts",
            [round(t, 2) for _, t in first], "later", [round(t, 2) for _, t in later],
        )  # fmt: skip
        # The primary wakes and processes the four creates it had queued: authorisations
        # that arrive late. Our threads' answers are dropped; the breaker stays open.
        await asyncio.sleep(1.0)
        assert ps.router.breakers["stripe-primary"].state == "open"
        worker = PaymentsWorker(
            ps.stack.ctx.repo, ps.payments, ps.stack.ctx.checkout,  # type: ignore[arg-type]
            ps.router.gateways, stray_after_s=0.0,
        )  # fmt: skip
        for _ in range(3):
            await worker.run_once()
        for o in orders[:4]:
            oid = str(o["order_id"])
            late = primary.by_order().get(oid, Counter())
            assert late == Counter({"canceled": 1}), (oid, late)  # authorised late, voided
            assert charges(ps, oid)["succeeded"] == 1
            kinds = [kind for kind, _ in await ps.payments.suspicious_of(oid)]
            assert kinds == ["late_authorisation_cancelled"], kinds
        for o in orders[4:]:
            assert primary.by_order().get(str(o["order_id"])) is None  # never sent there
        assert worker.counters["voided"] == 4
        assert await ps.stack.stock(sku) == (6, 0, 6)


async def test_a_frozen_primary_bounds_the_card_fingerprint_lookup_too(
    settings: Settings, accounts: tuple[LocalStripe, LocalStripe]
) -> None:
    primary = accounts[0]
    async with hung_stack(settings, accounts) as ps:
        checkout = ps.stack.ctx.checkout
        assert checkout is not None
        checkout.fraud = FraudRules(ps.payments, VelocityLimits())
        (sku,) = await ps.stack.product(stock=2)
        primary.pause()
        try:
            order, took = await timed_checkout(ps, sku, "fp")
        finally:
            primary.resume()
        print("frozen primary, fingerprint lookup then charge:", round(took, 2), "s")
        # The lookup timed out and opened the breaker: the charge went straight to the backup.
        assert (order["status"], order["gateway"]) == (st.PAID, "stripe-backup")
        assert ps.router.breakers["stripe-primary"].state == "open"
        assert ps.router.counters[("stripe-primary", "local", "skipped")] == 1
        attempts = await ps.payments.attempts_of(str(order["order_id"]))
        assert [a.gateway for a in attempts] == ["stripe-backup"]
