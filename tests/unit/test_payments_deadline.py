"""Checkout's payment deadline and its holds (ADR 0008 addendum, issue 13), with a manual
clock over in-memory orders, payments and stock: what happens at the deadline, before a
retry charge, and when a payment goes through for units that are no longer held."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import replace
from typing import Any

import pytest

from matchday.domain.errors import (
    MatchdayError,
    OutOfStock,
    ReservationClosed,
    Unavailable,
    UnknownReservation,
)
from matchday.inventory.commands import ReservationView
from matchday.payments.gateway import ChargeRequest, ChargeResult, RefundResult
from matchday.shop import models as st
from matchday.shop.checkout import CheckoutService
from matchday.shop.models import Order, OrderLine
from matchday.shop.payments_worker import PaymentsWorker
from tests.fakes import ManualClock

HOLD_S = 600.0


class FakeStock:
    """Holds with expiries on the same clock; on_hand per SKU."""

    def __init__(self, clock: ManualClock, on_hand: dict[str, int]) -> None:
        self.clock = clock
        self.on_hand = dict(on_hand)
        self.sold = dict.fromkeys(on_hand, 0)
        self.holds: dict[str, list[Any]] = {}  # id -> [sku, qty, status, expires_at]
        self.ids = itertools.count(1)
        self.sold_to: dict[str, str] = {}  # reservation id -> the order that committed it
        self.amnesic = False  # a restarted shard: closed holds are unknown, not "committed"
        self.lose_commit_answer = False  # the next commit lands, its answer does not

    def hold(self, sku: str, qty: int, ttl: float = 60.0) -> str:
        rid = f"r{next(self.ids)}"
        self.holds[rid] = [sku, qty, "held", self.clock.now() + ttl]
        return rid

    def available(self, sku: str) -> int:
        held = sum(h[1] for h in self.holds.values() if h[0] == sku and self._live(h))
        return self.on_hand[sku] - self.sold[sku] - held

    def reserved(self, sku: str) -> int:
        return sum(h[1] for h in self.holds.values() if h[0] == sku and self._live(h))

    def _live(self, h: list[Any]) -> bool:
        return bool(h[2] == "held" and h[3] > self.clock.now())

    def _held(self, rid: str) -> list[Any]:
        h = self.holds[rid]
        if self.amnesic and h[2] != "held":
            raise UnknownReservation(rid)
        if not self._live(h):
            raise ReservationClosed(rid, "expired" if h[2] == "held" else h[2])
        return h

    def _view(self, rid: str) -> ReservationView:
        sku, qty, status, expires = self.holds[rid]
        return ReservationView(rid, sku, qty, "cart", "cust", expires, status)

    async def reserve(self, request_id: str, sku: str, qty: int, cart_id: str,
                      customer_id: str, ttl_s: float) -> ReservationView:  # fmt: skip
        if self.available(sku) < qty:
            raise OutOfStock(sku, qty, self.available(sku))
        return self._view(self.hold(sku, qty, ttl_s))

    async def release(self, request_id: str, sku: str, rid: str) -> ReservationView:
        self._held(rid)[2] = "released"
        return self._view(rid)

    async def extend(self, request_id: str, sku: str, rid: str, ttl_s: float) -> ReservationView:
        self._held(rid)[3] = self.clock.now() + ttl_s
        return self._view(rid)

    async def commit(self, request_id: str, sku: str, rid: str, order_id: str) -> ReservationView:
        h = self._held(rid)
        h[2] = "committed"
        self.sold[sku] += h[1]
        self.sold_to[rid] = order_id
        if self.lose_commit_answer:
            self.lose_commit_answer = False
            raise Unavailable("storage went away before the answer")
        return self._view(rid)

    async def resize(self, *args: Any) -> ReservationView:
        raise NotImplementedError


class FakeOrders:
    """ShopRepository's order methods, in memory; captures live in FakePayments."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.orders: dict[str, Order] = {}
        self.captures: dict[str, tuple[str, str]] = {}
        self.cart_status: dict[str, str] = {}
        self.events: list[tuple[str, str]] = []
        self.queue: dict[str, float] = {}  # payment_queue (FakePayments'), order -> due in
        self.stock: FakeStock  # what storage knows of reservations: the fake engine's

    async def order(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    async def update_order(self, order_id: str, status: str, *, from_statuses: frozenset[str],
                           detail: Any = None, reopen_cart: bool = False,
                           unless_captured: bool = False, close_cart: bool = False,
                           dequeue: bool = False, **fields: Any) -> bool:  # fmt: skip
        o = self.orders[order_id]
        if close_cart:
            self.cart_status[o.cart_id] = "checked_out"
        if dequeue:
            self.queue.pop(order_id, None)
        if o.status not in from_statuses or (unless_captured and order_id in self.captures):
            return False
        self.orders[order_id] = replace(o, status=status, **fields)
        if status in (st.FAILED, st.CANCELLED) or reopen_cart:
            self.cart_status[o.cart_id] = "open"
        self.events.append((order_id, status))
        return True

    async def replace_line(self, order_id: str, old: str, new: str) -> None:
        o = self.orders[order_id]
        lines = tuple(replace(ln, reservation_id=new) if ln.reservation_id == old else ln
                      for ln in o.lines)  # fmt: skip
        self.orders[order_id] = replace(o, lines=lines)

    async def reservation_state(self, rid: str) -> tuple[str, str | None] | None:
        h = self.stock.holds.get(rid)
        return None if h is None else (h[2], self.stock.sold_to.get(rid))


class FakePayments:
    def __init__(self, orders: FakeOrders) -> None:
        self.orders = orders
        self.queue = orders.queue
        self.suspicious_log: list[tuple[str, str | None]] = []
        self.refunds: dict[str, int] = {}

    async def claim_capture(self, order_id: str, gateway: str, ref: str) -> tuple[str, str] | None:
        if order_id in self.orders.captures:
            return self.orders.captures[order_id]
        o = self.orders.orders[order_id]
        if o.status not in st.PAYABLE or (
            o.pay_by is not None and o.pay_by <= self.orders.clock.now()
        ):
            return None  # ended, or past its deadline (as the repository's claim)
        self.orders.captures[order_id] = (gateway, ref)
        return gateway, ref

    async def schedule(self, order_id: str, after_s: float, error: Any = None, *,
                       only_if_absent: bool = False) -> None:  # fmt: skip
        if not (only_if_absent and order_id in self.queue):
            self.queue[order_id] = after_s

    async def done(self, order_id: str) -> None:
        self.queue.pop(order_id, None)

    async def start_attempt(self, order_id: str, pay_within_s: float, queue_after_s: float) -> int:
        o = self.orders.orders[order_id]
        pay_by = o.pay_by or self.orders.clock.now() + pay_within_s
        self.orders.orders[order_id] = replace(o, attempts=o.attempts + 1, pay_by=pay_by)
        await self.schedule(order_id, queue_after_s, only_if_absent=True)
        return o.attempts + 1

    async def suspicious(self, kind: str, order_id: str | None, *args: Any) -> None:
        self.suspicious_log.append((kind, order_id))

    async def record_refund(self, key: str, gateway: str, ref: str, amount: int, *a: Any) -> None:
        self.refunds[key] = amount


class Gateway:
    """Answers ``answer`` (succeeded, declined, requires_action, down); counts charges, and
    can be held at a gate to let the test act while a charge is in flight."""

    name = "fake"

    def __init__(self, answer: str = "succeeded") -> None:
        self.answer = answer
        self.charged: list[str] = []
        self.refunded: dict[str, int] = {}
        self.gate: asyncio.Event | None = None

    async def charge(self, req: ChargeRequest) -> ChargeResult:
        self.charged.append(req.idempotency_key)
        if self.gate is not None:
            await self.gate.wait()
        if self.answer == "down":
            raise Unavailable("fake gateway down")
        return ChargeResult(self.answer, self.name, f"pi_{req.order_id}")  # type: ignore[arg-type]

    async def refund(self, ref: str, amount: int, key: str) -> RefundResult:
        self.refunded[key] = amount
        return RefundResult(self.name, f"re_{key}", amount)


class Events:
    async def publish(self, order_id: str, status: str, detail: dict[str, Any]) -> None:
        return None


class Shop:
    def __init__(self, answer: str = "succeeded", on_hand: int = 5) -> None:
        self.clock = ManualClock()
        self.stock = FakeStock(self.clock, {"A": on_hand, "B": on_hand})
        self.orders = FakeOrders(self.clock)
        self.orders.stock = self.stock
        self.payments = FakePayments(self.orders)
        self.gateway = Gateway(answer)
        self.checkout = CheckoutService(
            self.orders, self.stock, None, self.gateway, Events(),  # type: ignore[arg-type]
            payment_hold_s=HOLD_S, payments=self.payments,  # type: ignore[arg-type]
            clock=self.clock,
        )  # fmt: skip

    def order(self, *lines: tuple[str, int], unit: int = 1000, discount: int = 0) -> Order:
        now = self.clock.now()
        ols = tuple(OrderLine(self.stock.hold(sku, qty), sku, qty, unit, sku) for sku, qty in lines)
        total = sum(qty * unit for _, qty in lines)
        o = Order("o_1", "c_1", "cust", st.PENDING, total, "EUR", "pm_card_visa", 0, None,
                  None, None, None, now, now, ols, discount)  # fmt: skip
        self.orders.orders[o.order_id] = o
        self.orders.cart_status["c_1"] = "checked_out"
        return o

    def now(self, order_id: str = "o_1") -> Order:
        return self.orders.orders[order_id]

    async def worker_round(self) -> None:
        worker = PaymentsWorker(self.orders, self.payments, self.checkout, {})  # type: ignore[arg-type]
        await worker._settle("o_1", 1)


async def test_an_order_whose_gateway_stays_down_fails_at_its_deadline_and_frees_its_units() -> (
    None
):
    shop = Shop("down")
    order = await shop.checkout.resume(shop.order(("A", 2)))
    assert order.status == st.AMBIGUOUS and order.pay_by == shop.clock.now() + HOLD_S
    for _ in range(3):  # the worker retries, each time checking the holds first
        shop.clock.advance(HOLD_S / 4)
        await shop.worker_round()
        assert shop.now().status == st.AMBIGUOUS
        assert shop.stock.reserved("A") == 2  # extended, never lapsed
    assert 0 < shop.payments.queue["o_1"] <= HOLD_S / 4  # never scheduled past the deadline
    shop.clock.advance(HOLD_S / 4)
    await shop.worker_round()
    done = shop.now()
    assert (done.status, done.failure_code) == (st.FAILED, "payment_timeout")
    assert "not confirmed within 10 minutes" in str(done.failure_message)
    assert "Nothing was charged" in str(done.failure_message)
    assert shop.stock.available("A") == 5 and "o_1" not in shop.payments.queue
    assert shop.orders.cart_status["c_1"] == "open"
    charges = len(shop.gateway.charged)
    shop.clock.advance(3600)
    await shop.checkout.resume(done)  # a retried checkout finds it ended: nothing more
    assert len(shop.gateway.charged) == charges


async def test_a_charge_that_went_through_after_the_deadline_is_refunded_and_logged() -> None:
    shop = Shop("succeeded")
    first = await shop.checkout.resume(replace(shop.order(("A", 1)), payment_token="x"))
    assert first.status == st.PAID  # the shop works: now the same, late
    shop = Shop("succeeded")
    shop.gateway.gate = asyncio.Event()
    paying = asyncio.create_task(shop.checkout.resume(shop.order(("A", 1))))
    while not shop.gateway.charged:
        await asyncio.sleep(0)
    shop.clock.advance(HOLD_S + 1)  # the charge hangs past the deadline: the worker ends it
    await shop.worker_round()
    assert shop.now().failure_code == "payment_timeout"
    shop.gateway.gate.set()  # then the gateway answers: it charged
    late = await paying
    assert (late.status, late.failure_code) == (st.FAILED, "payment_timeout")
    assert shop.gateway.refunded == {"late_charge_refunded:o_1": 1000}
    assert ("late_charge_refunded", "o_1") in shop.payments.suspicious_log
    assert shop.stock.sold["A"] == 0 and shop.stock.available("A") == 5


async def test_a_charge_through_after_the_deadline_is_voided_before_the_worker_comes() -> None:
    """The deadline holds on its own: a payment that goes through past it is never captured,
    even while the order is still in flight (the worker has not failed it yet): the claim
    refuses it, it is given back, and the order fails there and then."""
    shop = Shop("succeeded")
    shop.gateway.gate = asyncio.Event()
    paying = asyncio.create_task(shop.checkout.resume(shop.order(("A", 1))))
    while not shop.gateway.charged:
        await asyncio.sleep(0)
    shop.clock.advance(HOLD_S + 1)  # past the deadline, and no worker round ran
    assert shop.now().status in st.PAYABLE
    shop.gateway.gate.set()
    late = await paying
    assert (late.status, late.failure_code) == (st.FAILED, "payment_timeout")
    assert "o_1" not in shop.orders.captures
    assert shop.gateway.refunded == {"late_charge_refunded:o_1": 1000}
    assert ("late_charge_refunded", "o_1") in shop.payments.suspicious_log
    assert shop.stock.sold["A"] == 0 and shop.stock.available("A") == 5
    assert "o_1" not in shop.payments.queue


async def test_a_payment_claimed_before_the_deadline_still_goes_through() -> None:
    shop = Shop("succeeded")
    order = shop.order(("A", 1))
    shop.stock.holds[order.lines[0].reservation_id][3] += HOLD_S  # extended at the charge
    await shop.payments.start_attempt("o_1", HOLD_S, 60.0)
    shop.orders.captures["o_1"] = ("fake", "pi_o_1")  # claimed, then the process died
    shop.clock.advance(HOLD_S + 1)
    done = await shop.checkout.resume(shop.now())
    assert done.status == st.PAID and shop.stock.sold["A"] == 1
    assert shop.gateway.charged == ["o_1:1"]  # asked again under the same key, not anew
    assert order.lines[0].reservation_id == done.lines[0].reservation_id


async def test_before_a_retry_charge_a_lapsed_hold_is_held_again_if_units_remain() -> None:
    shop = Shop("down")
    await shop.checkout.resume(shop.order(("A", 2)))
    old = shop.now().lines[0].reservation_id
    shop.stock.holds[old][2] = "revoked"  # a supplier count took it; units are still there
    shop.gateway.answer = "succeeded"
    done = await shop.checkout.resume(shop.now())
    assert done.status == st.PAID and shop.stock.sold["A"] == 2
    assert done.lines[0].reservation_id != old  # the order's line is the new hold


async def test_before_a_retry_charge_a_hold_that_cannot_be_had_again_fails_it_uncharged() -> None:
    shop = Shop("down", on_hand=2)
    await shop.checkout.resume(shop.order(("A", 2)))
    charges = len(shop.gateway.charged)
    shop.stock.holds[shop.now().lines[0].reservation_id][2] = "revoked"
    shop.stock.hold("A", 1)  # another shopper holds one of the two
    shop.gateway.answer = "succeeded"
    done = await shop.checkout.resume(shop.now())
    assert (done.status, done.failure_code) == (st.FAILED, "hold_lost")
    assert "nothing was charged" in str(done.failure_message)
    assert len(shop.gateway.charged) == charges  # no retry charge for units not held


@pytest.mark.parametrize("left", [0, 1], ids=["none-left", "too-few-left"])
async def test_a_payment_for_units_no_longer_held_and_sold_out_is_refunded_in_full(
    left: int,
) -> None:
    shop = Shop("succeeded", on_hand=3)
    shop.gateway.gate = asyncio.Event()
    paying = asyncio.create_task(shop.checkout.resume(shop.order(("A", 2))))
    while not shop.gateway.charged:
        await asyncio.sleep(0)
    shop.stock.holds[shop.now().lines[0].reservation_id][2] = "released"  # under the order
    shop.stock.hold("A", 3 - left)  # and its units are taken meanwhile
    shop.gateway.gate.set()
    done = await paying
    assert (done.status, done.failure_code) == (st.REFUNDED, "sold_out_refunded")
    assert "refunded it in full" in str(done.failure_message)
    assert shop.gateway.refunded == {"sold_out_refunded:o_1": 2000}
    assert ("sold_out_refunded", "o_1") in shop.payments.suspicious_log
    assert shop.stock.sold == {"A": 0, "B": 0}  # nothing sold that was not held
    assert shop.stock.available("A") == left  # nothing oversold either
    assert shop.orders.cart_status["c_1"] == "open"


async def test_a_payment_for_one_line_no_longer_held_sells_the_rest_and_refunds_it() -> None:
    shop = Shop("succeeded", on_hand=3)
    shop.gateway.gate = asyncio.Event()
    paying = asyncio.create_task(shop.checkout.resume(shop.order(("A", 2), ("B", 1))))
    while not shop.gateway.charged:
        await asyncio.sleep(0)
    shop.stock.holds[shop.now().lines[0].reservation_id][2] = "revoked"  # A, under the order
    shop.stock.on_hand["A"] = 0  # counted away
    shop.gateway.gate.set()
    done = await paying
    assert (done.status, done.failure_code) == (st.PAID, "partly_refunded")
    assert "A" in str(done.failure_message)
    assert shop.gateway.refunded == {"sold_out_refunded:o_1": 2000}
    assert shop.stock.sold == {"A": 0, "B": 1}
    assert shop.orders.cart_status["c_1"] == "checked_out"


async def test_a_line_lost_between_check_and_commit_is_refunded_its_share() -> None:
    shop = Shop("succeeded", on_hand=2)
    order = shop.order(("A", 1), ("B", 2), unit=1000, discount=300)
    b = order.lines[1].reservation_id
    commit = shop.stock.commit

    async def lose_b(request_id: str, sku: str, rid: str, order_id: str) -> ReservationView:
        if rid == b:  # revoked after the check, and its units counted away
            shop.stock.holds[b][2] = "revoked"
            shop.stock.on_hand["B"] = 0
        return await commit(request_id, sku, rid, order_id)

    shop.stock.commit = lose_b  # type: ignore[method-assign]
    done = await shop.checkout.resume(order)
    assert (done.status, done.failure_code) == (st.PAID, "partly_refunded")
    # B's 2000 less its 2/3 of the 300 discount; A stays sold.
    assert shop.gateway.refunded == {"sold_out_refunded:o_1": 1800}
    assert shop.stock.sold == {"A": 1, "B": 0}


async def test_a_commit_that_landed_unanswered_is_not_sold_again_after_a_shard_restart() -> None:
    """The full suite found one order selling two units: its commit landed but the answer
    was lost to a PostgreSQL restart, and the restarted shard, which does not remember
    closed holds, called the hold unknown; the retry held the units again and sold them."""
    shop = Shop("succeeded")
    order = shop.order(("A", 1))
    shop.stock.lose_commit_answer = True
    with contextlib.suppress(MatchdayError):
        await shop.checkout.resume(order)
    assert shop.stock.sold["A"] == 1  # it landed
    shop.stock.amnesic = True
    done = await shop.checkout.resume(shop.now())
    assert done.status == st.PAID
    assert shop.stock.sold["A"] == 1 and shop.stock.reserved("A") == 0
    assert done.lines[0].reservation_id == order.lines[0].reservation_id
