"""The payments worker: settles every order a checkout left unsettled, and voids strays.

A plain class (``actors/payments_worker.py`` hosts it on Ray). Each round it

1. queues unsettled orders that have no queue row (a crash before the row was written);
2. claims due rows (``FOR UPDATE SKIP LOCKED``, leased, so several workers never take the
   same order) and drives each order with :meth:`CheckoutService.resume`, which checks its
   holds, then asks the gateway again under the same key ``<order>:<attempt>``. The gateway
   looks the attempt up first (its recorded intent, else a search by key) and creates
   nothing when it finds one: an ambiguous outcome is resolved before any retry. An order
   still unsettled is scheduled again with exponential backoff and jitter, never past its
   payment deadline, where ``resume`` ends it (``payment_timeout``); one waiting on the
   customer's bank is looked at again at its deadline;
3. sweeps attempts whose outcome we never learned, of orders that have since settled: any
   authorisation there that is not the order's capture is cancelled (ADR 0008).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

from matchday.domain.errors import MatchdayError
from matchday.payments.gateway import PaymentGateway
from matchday.payments.ports import PaymentQueue
from matchday.shop import models as st
from matchday.shop.checkout import CheckoutService
from matchday.shop.models import Order
from matchday.shop.ports import Orders

log = logging.getLogger(__name__)

# Failure codes of orders the worker ended that operators count (stats(), ADR 0008).
ENDINGS = frozenset({"payment_timeout", "hold_lost", "sold_out_refunded", "partly_refunded"})


class PaymentsWorker:
    def __init__(
        self,
        repo: Orders,
        payments: PaymentQueue,
        checkout: CheckoutService,
        gateways: Mapping[str, PaymentGateway],
        *,
        base_s: float = 2.0,
        max_s: float = 300.0,
        lease_s: float = 120.0,
        stale_s: float = 120.0,
        stray_after_s: float = 60.0,
        batch: int = 20,
        rng: random.Random | None = None,
    ) -> None:
        self.repo = repo
        self.payments = payments
        self.checkout = checkout
        self.gateways = gateways
        self.base_s = base_s
        self.max_s = max_s
        self.lease_s = lease_s
        self.stale_s = stale_s
        self.stray_after_s = stray_after_s
        self.batch = batch
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self.counters: Counter[str] = Counter()

    def backoff(self, tries: int) -> float:
        """Exponential, capped, with "equal jitter": half fixed, half random, so orders that
        failed together do not all come back together."""
        delay = min(self.max_s, self.base_s * 2.0 ** max(0, tries - 1))
        return delay / 2 + self.rng.uniform(0, delay / 2)

    async def run_once(self, *, at: float | None = None) -> dict[str, int]:
        """One round; ``at`` (epoch seconds) pretends it is later, for tests."""
        found = await self.payments.enqueue_stale(self.stale_s)
        self.counters["requeued"] += found
        for order_id, tries in await self.payments.claim_due(self.batch, self.lease_s, at=at):
            await self._settle(order_id, tries)
        await self.sweep()
        return dict(self.counters)

    async def run(self, stop: asyncio.Event, poll_s: float = 1.0) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # a round that fails (PostgreSQL down) is retried next poll
                log.exception("payments worker round failed")
                self.counters["round_failed"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_s)

    async def sweep(self) -> int:
        voided = 0
        for attempt in await self.payments.open_attempts(self.stray_after_s):
            gateway: Any = self.gateways.get(attempt.gateway)
            release = getattr(gateway, "release_stray", None)
            if release is None:
                continue
            try:
                voided += int(await release(attempt))
            except MatchdayError as exc:
                log.info("stray attempt %s/%s: %s", attempt.order_id, attempt.gateway, exc)
        self.counters["voided"] += voided
        return voided

    async def _settle(self, order_id: str, tries: int) -> None:
        order = await self.repo.order(order_id)
        if order is None or order.status not in st.PAYABLE:
            await self.payments.done(order_id)
            return
        error: str | None = None
        try:
            order = await self.checkout.resume(order, with_action=True)
        except MatchdayError as exc:
            error = f"{exc.code}: {exc.message}"
        except Exception as exc:  # a bug must not stop the queue; the order is retried
            log.exception("payments worker: order %s", order_id)
            error = type(exc).__name__
        if error is None and order.status not in st.PAYABLE:
            self.counters["settled"] += 1
            self.counters[f"settled_{order.status}"] += 1
            if order.failure_code in ENDINGS:
                self.counters[order.failure_code] += 1
            await self.payments.done(order_id)
            return
        if error is None and order.status == st.REQUIRES_ACTION:
            self.counters["awaiting_customer"] += 1  # looked at again at its deadline
            return
        self.counters["retried"] += 1
        await self.payments.schedule(order_id, self._next_look(order, tries), error or order.status)

    def _next_look(self, order: Order, tries: int) -> float:
        """The backoff, but never past the order's payment deadline: it ends on time."""
        delay = self.backoff(tries)
        if not order.attempts:
            return delay
        # The checkout's clock: the deadline is its reckoning (and a test's manual clock).
        return max(0.0, min(delay, self.checkout.deadline(order) - self.checkout.clock.now()))
