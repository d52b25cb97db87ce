"""Resizing a held reservation: a cart line's quantity changed in place."""

from __future__ import annotations

from typing import Any

import pytest

from matchday.domain.errors import (
    LimitExceeded,
    OutOfStock,
    ReservationClosed,
    ReservationExpired,
    UnknownReservation,
)
from matchday.inventory.commands import Resize
from tests.fakes import ManualClock
from tests.unit.ledger_adapter import TypedLedger, typed
from tests.unit.test_ledger import (
    TTL,
    assert_refused_without_change,
    kinds,
    limits,
    release,
    reserve,
)


def resize(ledger: TypedLedger, rid: str, qty: int, now: float) -> Any:
    return ledger.resize(Resize(f"rsz-{rid}-{qty}", ledger.sku, rid, qty), now)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def test_growing_a_line_holds_only_the_extra_units_and_keeps_its_deadline(clock):
    ledger = typed("JERSEY-M", on_hand=10, per_customer_limit=10)
    view, _ = reserve(ledger, "r1", 2, now=clock.now())
    clock.advance(30)
    grown, events = resize(ledger, "r1", 5, clock.now())
    assert (grown.qty, grown.status, grown.expires_at) == (5, "held", view.expires_at)
    assert (ledger.reserved, ledger.available) == (5, 5)
    assert kinds(events) == ["resized"]
    assert ledger.customer_units == {"cust-1": 5}


def test_shrinking_a_line_returns_units_at_once_without_letting_go_of_the_rest(clock):
    ledger = typed("JERSEY-M", on_hand=3, per_customer_limit=3)
    reserve(ledger, "r1", 3, now=clock.now())
    view, events = resize(ledger, "r1", 1, clock.now())
    assert view.qty == 1
    assert (ledger.reserved, ledger.available) == (1, 2)
    assert "back_in_stock" in kinds(events)
    reservations, customers = ledger.drain_dirty()
    assert [r.qty for r in reservations] == [1]
    assert customers == [("cust-1", 1)]


def test_growing_beyond_available_stock_is_refused_for_the_extra_units_only(clock):
    ledger = typed("JERSEY-M", on_hand=4)
    reserve(ledger, "r1", 2, now=clock.now())
    reserve(ledger, "r2", 1, customer="cust-2", now=clock.now())
    err = assert_refused_without_change(
        ledger, lambda: resize(ledger, "r1", 4, clock.now()), OutOfStock
    )
    assert (err.requested, err.available) == (2, 1)  # type: ignore[attr-defined]
    assert resize(ledger, "r1", 3, clock.now())[0].qty == 3  # the one unit left does fit


def test_growing_past_the_per_customer_limit_counts_every_line_of_that_customer(clock):
    ledger = typed("JERSEY-M", on_hand=10, per_customer_limit=3)
    reserve(ledger, "r1", 1, now=clock.now())
    reserve(ledger, "r2", 1, cart="cart-2", now=clock.now())
    err = assert_refused_without_change(
        ledger, lambda: resize(ledger, "r1", 3, clock.now()), LimitExceeded
    )
    assert (err.limit, err.held, err.kind) == (3, 2, "per-customer")  # type: ignore[attr-defined]
    assert resize(ledger, "r1", 2, clock.now())[0].qty == 2


def test_the_low_stock_order_cap_bounds_the_whole_line_when_it_grows(clock):
    ledger = typed("JERSEY-M", on_hand=5)
    limits(ledger, clock.now(), threshold=5, cap=1)
    reserve(ledger, "r1", 1, now=clock.now())
    assert_refused_without_change(
        ledger, lambda: resize(ledger, "r1", 2, clock.now()), LimitExceeded
    )


def test_resizing_an_expired_closed_or_unknown_reservation_is_refused_and_changes_nothing(clock):
    ledger = typed("JERSEY-M", on_hand=5)
    reserve(ledger, "r1", 1, now=clock.now())
    reserve(ledger, "r2", 1, now=clock.now())
    release(ledger, "r2", clock.now())
    assert_refused_without_change(
        ledger, lambda: resize(ledger, "r2", 2, clock.now()), ReservationClosed
    )
    assert_refused_without_change(
        ledger, lambda: resize(ledger, "nope", 2, clock.now()), UnknownReservation
    )
    clock.advance(TTL)
    assert_refused_without_change(
        ledger, lambda: resize(ledger, "r1", 2, clock.now()), ReservationExpired
    )
