"""Example-based tests of SkuLedger, the pure per-SKU stock state machine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from matchday.domain.errors import (
    InvariantViolation,
    LimitExceeded,
    MatchdayError,
    OutOfStock,
    ReservationClosed,
    ReservationExpired,
    UnknownReservation,
)
from matchday.inventory.commands import (
    AdjustLimits,
    Commit,
    Expire,
    Extend,
    Release,
    Reserve,
    Restock,
    SetOnHand,
    StockView,
)
from matchday.inventory.ledger import CLOSED_MEMORY
from tests.fakes import ManualClock
from tests.unit.ledger_adapter import TypedLedger, typed

SKU = "JERSEY-HOME-M"
TTL = 300.0


# -- helpers ---------------------------------------------------------------------------------


def reserve(
    ledger: TypedLedger,
    rid: str,
    qty: int = 1,
    *,
    customer: str = "cust-1",
    cart: str = "cart-1",
    ttl: float = TTL,
    now: float,
) -> Any:
    return ledger.reserve(Reserve(f"req-{rid}", ledger.sku, qty, cart, customer, ttl), rid, now)


def release(ledger: TypedLedger, rid: str, now: float) -> Any:
    return ledger.release(Release(f"rel-{rid}", ledger.sku, rid), now)


def commit(ledger: TypedLedger, rid: str, now: float, order: str = "order-1") -> Any:
    return ledger.commit(Commit(f"com-{rid}", ledger.sku, rid, order), now)


def extend(ledger: TypedLedger, rid: str, now: float, ttl: float = TTL) -> Any:
    return ledger.extend(Extend(f"ext-{rid}", ledger.sku, rid, ttl), now)


def expire(ledger: TypedLedger, rid: str, now: float) -> Any:
    return ledger.expire(Expire(f"exp-{rid}", ledger.sku, rid), now)


def restock(ledger: TypedLedger, qty: int, now: float) -> Any:
    return ledger.restock(Restock("req-restock", ledger.sku, qty), now)


def set_on_hand(ledger: TypedLedger, units: int, now: float) -> Any:
    return ledger.set_on_hand(SetOnHand("req-set", ledger.sku, units), now)


def limits(
    ledger: TypedLedger,
    now: float,
    per_customer: int | None = None,
    threshold: int | None = None,
    cap: int | None = None,
) -> Any:
    return ledger.adjust_limits(
        AdjustLimits("req-limits", ledger.sku, per_customer, threshold, cap), now
    )


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def snapshot(ledger: TypedLedger) -> dict[str, Any]:
    return {
        "on_hand": ledger.on_hand,
        "reserved": ledger.reserved,
        "sold": ledger.sold,
        "available": ledger.available,
        "limits": (
            ledger.per_customer_limit,
            ledger.low_stock_threshold,
            ledger.low_stock_order_cap,
        ),
        "held": {rid: (r.qty, r.expires_at, r.status) for rid, r in ledger.held.items()},
        "customer_units": ledger.customer_units and dict(ledger.customer_units),
        "stock": ledger.stock(),
    }


def assert_refused_without_change(
    ledger: TypedLedger, call: Callable[[], Any], error: type[MatchdayError]
) -> MatchdayError:
    """Run ``call`` expecting ``error``; nothing in the ledger may have moved."""
    ledger.drain_dirty()
    before = snapshot(ledger)
    with pytest.raises(error) as info:
        call()
    assert snapshot(ledger) == before
    assert ledger.drain_dirty() == ([], [])
    return info.value


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


# -- reserve ---------------------------------------------------------------------------------


def test_a_reservation_within_available_stock_holds_units_until_its_ttl_runs_out(clock):
    ledger = typed(SKU, on_hand=10)

    view, events = reserve(ledger, "r1", 3, customer="cust-7", cart="cart-9", now=clock.now())

    assert (view.reservation_id, view.sku, view.qty) == ("r1", SKU, 3)
    assert (view.cart_id, view.customer_id, view.status) == ("cart-9", "cust-7", "held")
    assert view.expires_at == clock.now() + TTL
    assert view.order_id is None
    assert (ledger.on_hand, ledger.reserved, ledger.sold, ledger.available) == (10, 3, 0, 7)
    assert ledger.next_deadline("r1") == clock.now() + TTL
    assert events == [
        {
            "type": "reserved",
            "sku": SKU,
            "reservation_id": "r1",
            "cart_id": "cart-9",
            "qty": 3,
            "available": 7,
        }
    ]


def test_a_successful_reservation_reports_itself_and_its_customer_as_dirty_exactly_once(clock):
    ledger = typed(SKU, on_hand=10, per_customer_limit=5)
    reserve(ledger, "r1", 3, customer="cust-7", now=clock.now())

    reservations, customers = ledger.drain_dirty()

    assert [(r.reservation_id, r.qty, r.status) for r in reservations] == [("r1", 3, "held")]
    assert customers == [("cust-7", 3)]
    assert ledger.drain_dirty() == ([], [])


def test_a_sku_without_a_per_customer_limit_keeps_no_customer_totals(clock):
    # Issue 12: a SKU sold to a million fans kept a million totals, written on every reserve.
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 3, customer="cust-7", now=clock.now())
    commit(ledger, "r1", clock.now())

    reservations, customers = ledger.drain_dirty()

    assert ledger.customer_units is None
    assert [(r.reservation_id, r.status) for r in reservations] == [("r1", "committed")]
    assert customers == []


def test_a_reservation_that_would_exceed_available_stock_is_refused_and_changes_nothing(clock):
    ledger = typed(SKU, on_hand=5)
    reserve(ledger, "r1", 3, now=clock.now())

    err = assert_refused_without_change(
        ledger, lambda: reserve(ledger, "r2", 3, customer="cust-2", now=clock.now()), OutOfStock
    )

    assert err.args == (SKU, 3, 2)
    assert "r2" not in ledger.held


def test_a_reservation_of_exactly_the_available_stock_succeeds_and_sells_the_sku_out(clock):
    ledger = typed(SKU, on_hand=4)

    _, events = reserve(ledger, "r1", 4, now=clock.now())

    assert ledger.available == 0
    assert kinds(events) == ["reserved", "sold_out"]
    assert events[1] == {"type": "sold_out", "sku": SKU, "available": 0}


def test_a_sku_with_no_stock_refuses_even_a_single_unit(clock):
    ledger = typed(SKU, on_hand=0)

    err = assert_refused_without_change(
        ledger, lambda: reserve(ledger, "r1", 1, now=clock.now()), OutOfStock
    )

    assert err.args == (SKU, 1, 0)


def test_units_already_sold_are_not_available_to_reserve(clock):
    ledger = typed(SKU, on_hand=10, sold=8)

    reserve(ledger, "r1", 2, now=clock.now())

    assert ledger.available == 0
    assert_refused_without_change(
        ledger, lambda: reserve(ledger, "r2", 1, now=clock.now()), OutOfStock
    )


# -- release ---------------------------------------------------------------------------------


def test_releasing_a_held_reservation_returns_its_units_to_available_stock(clock):
    ledger = typed(SKU, on_hand=10, per_customer_limit=10)
    reserve(ledger, "r1", 4, customer="cust-1", now=clock.now())
    ledger.drain_dirty()

    view, events = release(ledger, "r1", clock.now())

    assert view.status == "released"
    assert (ledger.reserved, ledger.sold, ledger.available) == (0, 0, 10)
    assert "r1" not in ledger.held
    assert ledger.customer_units == {}
    assert kinds(events) == ["released"]
    assert events[0]["available"] == 10
    reservations, customers = ledger.drain_dirty()
    assert [(r.reservation_id, r.status) for r in reservations] == [("r1", "released")]
    assert customers == [("cust-1", 0)]


def test_releasing_a_reservation_that_is_past_its_ttl_but_not_yet_expired_by_its_timer_works(clock):
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 4, now=clock.now())
    clock.advance(TTL + 1)

    view, _ = release(ledger, "r1", clock.now())

    assert view.status == "released"
    assert ledger.available == 10


def test_releasing_a_reservation_twice_is_refused_as_closed_and_changes_nothing(clock):
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 4, now=clock.now())
    release(ledger, "r1", clock.now())

    err = assert_refused_without_change(
        ledger, lambda: release(ledger, "r1", clock.now()), ReservationClosed
    )

    assert err.args == ("r1", "released")
    assert ledger.available == 10


def test_releasing_a_committed_reservation_is_refused_and_says_it_was_committed(clock):
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 4, now=clock.now())
    commit(ledger, "r1", clock.now())

    err = assert_refused_without_change(
        ledger, lambda: release(ledger, "r1", clock.now()), ReservationClosed
    )

    assert err.args == ("r1", "committed")
    assert (ledger.sold, ledger.available) == (4, 6)


def test_releasing_an_unknown_reservation_is_refused_as_unknown_and_changes_nothing(clock):
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 4, now=clock.now())

    err = assert_refused_without_change(
        ledger, lambda: release(ledger, "nope", clock.now()), UnknownReservation
    )

    assert err.args == ("nope",)


def test_the_ledger_forgets_the_oldest_closed_reservations_beyond_its_memory(clock):
    ledger = typed(SKU, on_hand=1)
    for i in range(CLOSED_MEMORY + 1):
        reserve(ledger, f"r{i}", 1, now=clock.now())
        release(ledger, f"r{i}", clock.now())

    assert_refused_without_change(
        ledger, lambda: release(ledger, "r0", clock.now()), UnknownReservation
    )
    assert_refused_without_change(
        ledger, lambda: release(ledger, "r1", clock.now()), ReservationClosed
    )
    last = f"r{CLOSED_MEMORY}"
    assert_refused_without_change(
        ledger, lambda: release(ledger, last, clock.now()), ReservationClosed
    )


# -- commit ----------------------------------------------------------------------------------


def test_committing_a_held_reservation_turns_its_reserved_units_into_sold_ones(clock):
    ledger = typed(SKU, on_hand=10, per_customer_limit=10)
    reserve(ledger, "r1", 3, customer="cust-1", now=clock.now())
    ledger.drain_dirty()

    view, events = commit(ledger, "r1", clock.now(), order="order-42")

    assert (view.status, view.order_id, view.qty) == ("committed", "order-42", 3)
    assert (ledger.on_hand, ledger.reserved, ledger.sold, ledger.available) == (10, 0, 3, 7)
    assert "r1" not in ledger.held
    assert ledger.customer_units == {"cust-1": 3}
    assert kinds(events) == ["committed"]
    reservations, _ = ledger.drain_dirty()
    assert [(r.reservation_id, r.status, r.order_id) for r in reservations] == [
        ("r1", "committed", "order-42")
    ]


def test_committing_an_expired_reservation_whose_timer_has_not_fired_is_refused_and_changes_nothing(
    clock,
):
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 3, now=clock.now())
    clock.advance(TTL + 0.5)

    err = assert_refused_without_change(
        ledger, lambda: commit(ledger, "r1", clock.now()), ReservationExpired
    )

    assert err.args == ("r1",)
    assert ledger.held["r1"].status == "held"
    assert (ledger.reserved, ledger.sold) == (3, 0)
    # The timer's own Expire is what releases it afterwards.
    view, _ = expire(ledger, "r1", clock.now())
    assert view.status == "expired"
    assert (ledger.reserved, ledger.sold, ledger.available) == (0, 0, 10)


def test_a_reservation_is_already_expired_at_the_exact_instant_of_its_deadline(clock):
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 3, now=clock.now())

    clock.advance(TTL - 0.001)
    commit(ledger, "r1", clock.now())  # just inside the deadline
    reserve(ledger, "r2", 1, now=clock.now())
    clock.advance(TTL)

    assert_refused_without_change(
        ledger, lambda: commit(ledger, "r2", clock.now()), ReservationExpired
    )


def test_committing_a_reservation_twice_is_refused_as_closed_and_sells_nothing_more(clock):
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 3, now=clock.now())
    commit(ledger, "r1", clock.now())

    err = assert_refused_without_change(
        ledger, lambda: commit(ledger, "r1", clock.now()), ReservationClosed
    )

    assert err.args == ("r1", "committed")
    assert ledger.sold == 3


def test_committing_a_released_reservation_is_refused_as_closed(clock):
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 3, now=clock.now())
    release(ledger, "r1", clock.now())

    err = assert_refused_without_change(
        ledger, lambda: commit(ledger, "r1", clock.now()), ReservationClosed
    )

    assert err.args == ("r1", "released")
    assert ledger.sold == 0


def test_committing_an_unknown_reservation_is_refused_as_unknown(clock):
    ledger = typed(SKU, on_hand=10)

    assert_refused_without_change(
        ledger, lambda: commit(ledger, "ghost", clock.now()), UnknownReservation
    )


# -- extend ----------------------------------------------------------------------------------


def test_extending_a_held_reservation_moves_its_deadline_to_now_plus_the_new_ttl(clock):
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 3, now=clock.now())
    ledger.drain_dirty()
    clock.advance(100)

    view, events = extend(ledger, "r1", clock.now(), ttl=600)

    assert view.expires_at == clock.now() + 600
    assert ledger.next_deadline("r1") == clock.now() + 600
    assert kinds(events) == ["extended"]
    assert (ledger.reserved, ledger.available) == (3, 7)
    reservations, customers = ledger.drain_dirty()
    assert [(r.reservation_id, r.expires_at) for r in reservations] == [("r1", clock.now() + 600)]
    assert customers == []


def test_extending_a_hold_that_already_lasts_long_enough_keeps_its_deadline_and_writes_nothing(
    clock,
):
    """A checkout's extend is the check, before each charge, that the hold is still held; a
    hold that outlives the payment deadline already (an add's 900 s against 720) needs no
    write for it, and is never shortened."""
    ledger = typed(SKU, on_hand=10)
    held, _ = reserve(ledger, "r1", 3, now=clock.now(), ttl=900)
    ledger.drain_dirty()
    clock.advance(100)

    for ttl in (720.0, 800.0):  # to exactly the deadline it has, and to before it
        view, events = extend(ledger, "r1", clock.now(), ttl=ttl)
        assert view.expires_at == held.expires_at
        assert events == []
        assert ledger.drain_dirty() == ([], [])
    assert ledger.next_deadline("r1") == held.expires_at

    view, events = extend(ledger, "r1", clock.now(), ttl=801)  # past it: extended as ever
    assert view.expires_at == clock.now() + 801
    assert kinds(events) == ["extended"]


def test_an_extended_reservation_survives_its_original_deadline_and_can_still_be_committed(clock):
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 3, now=clock.now())
    extend(ledger, "r1", clock.now() + 200, ttl=600)
    clock.advance(TTL)

    assert expire(ledger, "r1", clock.now()) is None
    assert ledger.reserved == 3
    view, _ = commit(ledger, "r1", clock.now())
    assert view.status == "committed"


def test_extending_an_expired_reservation_is_refused_and_changes_nothing(clock):
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 3, now=clock.now())
    clock.advance(TTL)

    err = assert_refused_without_change(
        ledger, lambda: extend(ledger, "r1", clock.now()), ReservationExpired
    )

    assert err.args == ("r1",)


def test_extending_a_closed_or_unknown_reservation_is_refused(clock):
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 3, now=clock.now())
    release(ledger, "r1", clock.now())

    assert_refused_without_change(
        ledger, lambda: extend(ledger, "r1", clock.now()), ReservationClosed
    )
    assert_refused_without_change(
        ledger, lambda: extend(ledger, "r9", clock.now()), UnknownReservation
    )


# -- expire ----------------------------------------------------------------------------------


def test_expiring_a_due_reservation_returns_its_units_and_frees_the_customer(clock):
    ledger = typed(SKU, on_hand=10, per_customer_limit=4)
    reserve(ledger, "r1", 4, customer="cust-1", now=clock.now())
    ledger.drain_dirty()
    clock.advance(TTL)

    view, events = expire(ledger, "r1", clock.now())

    assert view.status == "expired"
    assert (ledger.reserved, ledger.available) == (0, 10)
    assert ledger.customer_units == {}
    assert kinds(events) == ["expired"]
    reservations, customers = ledger.drain_dirty()
    assert [(r.reservation_id, r.status) for r in reservations] == [("r1", "expired")]
    assert customers == [("cust-1", 0)]
    reserve(ledger, "r2", 4, customer="cust-1", now=clock.now())
    assert_refused_without_change(
        ledger, lambda: release(ledger, "r1", clock.now()), ReservationClosed
    )


def test_an_expiry_that_fires_before_the_deadline_does_nothing(clock):
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 3, now=clock.now())
    ledger.drain_dirty()
    before = snapshot(ledger)

    assert expire(ledger, "r1", clock.now() + TTL - 1) is None

    assert snapshot(ledger) == before
    assert ledger.drain_dirty() == ([], [])


def test_an_expiry_of_a_reservation_that_is_already_closed_or_unknown_does_nothing(clock):
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 3, now=clock.now())
    commit(ledger, "r1", clock.now())
    ledger.drain_dirty()
    before = snapshot(ledger)

    assert expire(ledger, "r1", clock.now() + 10 * TTL) is None
    assert expire(ledger, "never-existed", clock.now() + 10 * TTL) is None

    assert snapshot(ledger) == before
    assert ledger.drain_dirty() == ([], [])
    assert ledger.sold == 3


# -- restock ---------------------------------------------------------------------------------


def test_restocking_adds_units_to_on_hand_and_to_available_stock(clock):
    ledger = typed(SKU, on_hand=10, sold=4)
    reserve(ledger, "r1", 2, now=clock.now())

    view, events = restock(ledger, 5, clock.now())

    assert view == StockView(SKU, 15, 2, 4, 9)
    assert (ledger.on_hand, ledger.reserved, ledger.sold, ledger.available) == (15, 2, 4, 9)
    assert events == [{"type": "restocked", "sku": SKU, "available": 9, "qty": 5}]


def test_restocking_a_sold_out_sku_announces_that_it_is_back_in_stock(clock):
    ledger = typed(SKU, on_hand=2)
    reserve(ledger, "r1", 2, now=clock.now())
    commit(ledger, "r1", clock.now())
    assert ledger.available == 0

    _, events = restock(ledger, 5, clock.now())

    assert "back_in_stock" in kinds(events)


# -- set_on_hand -----------------------------------------------------------------------------


def test_setting_on_hand_makes_units_the_unsold_stock_while_keeping_sold_units(clock):
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 3, now=clock.now())
    commit(ledger, "r1", clock.now())
    reserve(ledger, "r2", 2, now=clock.now())

    view, events = set_on_hand(ledger, 20, clock.now())

    assert (view.on_hand, view.reserved, view.sold, view.available) == (23, 2, 3, 18)
    assert view.revoked == ()
    assert (ledger.on_hand, ledger.reserved, ledger.sold, ledger.available) == (23, 2, 3, 18)
    assert kinds(events) == ["stock_set"]
    assert events[0]["units"] == 20
    assert "r2" in ledger.held


def test_setting_on_hand_below_the_reserved_units_revokes_the_newest_reservations_first(clock):
    ledger = typed(SKU, on_hand=10, per_customer_limit=10)
    reserve(ledger, "r1", 2, customer="cust-1", now=clock.now())
    reserve(ledger, "r2", 3, customer="cust-2", now=clock.now() + 1)
    reserve(ledger, "r3", 4, customer="cust-3", now=clock.now() + 2)
    ledger.drain_dirty()

    view, events = set_on_hand(ledger, 5, clock.now() + 3)

    assert view.revoked == ("r3",)
    assert list(ledger.held) == ["r1", "r2"]
    assert (ledger.on_hand, ledger.reserved, ledger.sold, ledger.available) == (5, 5, 0, 0)
    assert ledger.customer_units == {"cust-1": 2, "cust-2": 3}
    assert kinds(events) == ["revoked", "stock_set", "sold_out"]
    assert events[0]["reservation_id"] == "r3"
    reservations, customers = ledger.drain_dirty()
    assert [(r.reservation_id, r.status) for r in reservations] == [("r3", "revoked")]
    assert customers == [("cust-3", 0)]
    err = assert_refused_without_change(
        ledger, lambda: commit(ledger, "r3", clock.now() + 4), ReservationClosed
    )
    assert err.args == ("r3", "revoked")


def test_setting_on_hand_revokes_in_newest_first_order_until_the_holds_fit(clock):
    ledger = typed(SKU, on_hand=20)
    for i, qty in enumerate([5, 1, 1, 1], start=1):
        reserve(ledger, f"r{i}", qty, customer=f"cust-{i}", now=clock.now())

    view, events = set_on_hand(ledger, 6, clock.now())

    assert view.revoked == ("r4", "r3")
    assert [e["reservation_id"] for e in events if e["type"] == "revoked"] == ["r4", "r3"]
    assert (ledger.reserved, ledger.available) == (6, 0)


def test_setting_on_hand_to_zero_revokes_every_hold_and_never_makes_available_negative(clock):
    ledger = typed(SKU, on_hand=10)
    reserve(ledger, "r1", 3, now=clock.now())
    commit(ledger, "r1", clock.now())
    reserve(ledger, "r2", 2, customer="cust-2", now=clock.now())
    reserve(ledger, "r3", 4, customer="cust-3", now=clock.now())

    view, _ = set_on_hand(ledger, 0, clock.now())

    assert view.revoked == ("r3", "r2")
    assert ledger.held == {}
    assert (ledger.on_hand, ledger.reserved, ledger.sold, ledger.available) == (3, 0, 3, 0)
    assert ledger.sold <= ledger.on_hand


def test_setting_on_hand_below_the_threshold_announces_low_stock(clock):
    ledger = typed(SKU, on_hand=50, low_stock_threshold=5)

    _, events = set_on_hand(ledger, 4, clock.now())

    assert kinds(events) == ["stock_set", "low_stock"]
    assert events[1] == {"type": "low_stock", "sku": SKU, "available": 4, "threshold": 5}


def test_setting_on_hand_on_a_sold_out_sku_announces_it_is_back_in_stock(clock):
    ledger = typed(SKU, on_hand=0)

    _, events = set_on_hand(ledger, 5, clock.now())

    assert kinds(events) == ["stock_set", "back_in_stock"]
    assert ledger.available == 5


# -- adjust_limits ---------------------------------------------------------------------------


def test_adjusting_limits_replaces_all_three_and_none_removes_a_limit(clock):
    ledger = typed(
        SKU, on_hand=10, per_customer_limit=2, low_stock_threshold=3, low_stock_order_cap=1
    )

    view, events = limits(ledger, clock.now(), per_customer=5)

    assert (view.per_customer_limit, view.low_stock_threshold, view.low_stock_order_cap) == (
        5,
        None,
        None,
    )
    assert (ledger.per_customer_limit, ledger.low_stock_threshold, ledger.low_stock_order_cap) == (
        5,
        None,
        None,
    )
    assert events == [{"type": "limits_changed", "sku": SKU, "available": 10}]


def test_a_low_stock_order_cap_without_a_threshold_is_refused_and_changes_nothing(clock):
    ledger = typed(SKU, on_hand=10, per_customer_limit=2)

    err = assert_refused_without_change(
        ledger, lambda: limits(ledger, clock.now(), per_customer=9, cap=1), InvariantViolation
    )

    assert err.args[0] == SKU
    assert ledger.per_customer_limit == 2


# -- per-customer limit ----------------------------------------------------------------------


def test_a_customer_may_hold_up_to_the_per_customer_limit_across_several_reservations(clock):
    ledger = typed(SKU, on_hand=100, per_customer_limit=4)
    reserve(ledger, "r1", 1, customer="cust-1", now=clock.now())
    reserve(ledger, "r2", 3, customer="cust-1", now=clock.now())

    assert ledger.customer_units == {"cust-1": 4}
    err = assert_refused_without_change(
        ledger, lambda: reserve(ledger, "r3", 1, customer="cust-1", now=clock.now()), LimitExceeded
    )
    assert err.args == (SKU, 4, 1, 4, "per-customer")


def test_a_single_reservation_larger_than_the_per_customer_limit_is_refused(clock):
    ledger = typed(SKU, on_hand=100, per_customer_limit=2)

    err = assert_refused_without_change(
        ledger, lambda: reserve(ledger, "r1", 3, customer="cust-1", now=clock.now()), LimitExceeded
    )

    assert (err.limit, err.requested, err.held, err.kind) == (2, 3, 0, "per-customer")


def test_units_a_customer_already_bought_count_towards_the_per_customer_limit(clock):
    ledger = typed(SKU, on_hand=100, per_customer_limit=3)
    reserve(ledger, "r1", 2, customer="cust-1", now=clock.now())
    commit(ledger, "r1", clock.now())
    reserve(ledger, "r2", 1, customer="cust-1", now=clock.now())

    err = assert_refused_without_change(
        ledger, lambda: reserve(ledger, "r3", 1, customer="cust-1", now=clock.now()), LimitExceeded
    )

    assert err.held == 3
    assert ledger.customer_units == {"cust-1": 3}


def test_released_expired_and_revoked_units_no_longer_count_towards_the_limit(clock):
    ledger = typed(SKU, on_hand=100, per_customer_limit=3)
    reserve(ledger, "r1", 3, customer="cust-1", now=clock.now())
    release(ledger, "r1", clock.now())
    reserve(ledger, "r2", 3, customer="cust-1", now=clock.now())
    clock.advance(TTL)
    expire(ledger, "r2", clock.now())
    reserve(ledger, "r3", 3, customer="cust-1", now=clock.now())
    set_on_hand(ledger, 0, clock.now())

    assert ledger.customer_units == {}
    restock(ledger, 3, clock.now())
    view, _ = reserve(ledger, "r4", 3, customer="cust-1", now=clock.now())
    assert view.qty == 3


def test_the_per_customer_limit_applies_to_each_customer_separately(clock):
    ledger = typed(SKU, on_hand=100, per_customer_limit=2)
    reserve(ledger, "r1", 2, customer="cust-1", now=clock.now())

    reserve(ledger, "r2", 2, customer="cust-2", now=clock.now())

    assert ledger.customer_units == {"cust-1": 2, "cust-2": 2}
    assert ledger.reserved == 4


def test_units_held_before_a_limit_was_set_count_once_it_is(clock):
    ledger = typed(SKU, on_hand=100)
    reserve(ledger, "r1", 5, customer="cust-1", now=clock.now())
    limits(ledger, clock.now(), per_customer=6)

    reserve(ledger, "r2", 1, customer="cust-1", now=clock.now())

    err = assert_refused_without_change(
        ledger, lambda: reserve(ledger, "r3", 1, customer="cust-1", now=clock.now()), LimitExceeded
    )
    assert err.held == 6


# -- low stock -------------------------------------------------------------------------------


def test_crossing_the_low_stock_threshold_emits_low_stock_once_per_crossing(clock):
    ledger = typed(SKU, on_hand=10, low_stock_threshold=3)

    _, above = reserve(ledger, "r1", 6, now=clock.now())  # 4 left
    _, crossing = reserve(ledger, "r2", 1, now=clock.now())  # 3 left: at the threshold
    _, below = reserve(ledger, "r3", 1, now=clock.now())  # 2 left

    assert kinds(above) == ["reserved"]
    assert kinds(crossing) == ["reserved", "low_stock"]
    assert crossing[1] == {"type": "low_stock", "sku": SKU, "available": 3, "threshold": 3}
    assert kinds(below) == ["reserved"]


def test_low_stock_is_announced_again_after_stock_recovers_and_falls_once_more(clock):
    ledger = typed(SKU, on_hand=10, low_stock_threshold=3)
    _, first = reserve(ledger, "r1", 8, now=clock.now())
    release(ledger, "r1", clock.now())

    _, second = reserve(ledger, "r2", 7, now=clock.now())

    assert kinds(first) == ["reserved", "low_stock"]
    assert kinds(second) == ["reserved", "low_stock"]


def test_a_reservation_that_jumps_from_above_the_threshold_to_zero_announces_both(clock):
    ledger = typed(SKU, on_hand=10, low_stock_threshold=3)

    _, events = reserve(ledger, "r1", 10, now=clock.now())

    assert kinds(events) == ["reserved", "low_stock", "sold_out"]


def test_the_low_stock_order_cap_refuses_larger_orders_once_stock_is_low(clock):
    ledger = typed(SKU, on_hand=5, low_stock_threshold=5, low_stock_order_cap=2)

    err = assert_refused_without_change(
        ledger, lambda: reserve(ledger, "r1", 3, now=clock.now()), LimitExceeded
    )
    assert err.args == (SKU, 2, 3, 0, "low-stock per-order")

    view, _ = reserve(ledger, "r2", 2, now=clock.now())
    assert view.qty == 2
    assert ledger.available == 3


def test_the_low_stock_order_cap_does_not_apply_while_stock_is_above_the_threshold(clock):
    ledger = typed(SKU, on_hand=20, low_stock_threshold=5, low_stock_order_cap=1)

    view, events = reserve(ledger, "r1", 10, now=clock.now())

    assert view.qty == 10
    assert kinds(events) == ["reserved"]
    # 10 available, still above 5: an order of 5 is allowed and lands on the threshold.
    _, events = reserve(ledger, "r3", 5, now=clock.now())
    assert kinds(events) == ["reserved", "low_stock"]
    assert_refused_without_change(
        ledger, lambda: reserve(ledger, "r4", 2, now=clock.now()), LimitExceeded
    )


def test_a_low_stock_threshold_without_an_order_cap_limits_no_order_size(clock):
    ledger = typed(SKU, on_hand=5, low_stock_threshold=5)

    view, _ = reserve(ledger, "r1", 5, now=clock.now())

    assert view.qty == 5


def test_the_low_stock_cap_is_checked_before_the_per_customer_limit_and_stock(clock):
    ledger = typed(
        SKU, on_hand=2, per_customer_limit=1, low_stock_threshold=2, low_stock_order_cap=1
    )

    err = assert_refused_without_change(
        ledger, lambda: reserve(ledger, "r1", 3, now=clock.now()), LimitExceeded
    )

    assert err.kind == "low-stock per-order"


# -- sold out --------------------------------------------------------------------------------


def test_sold_out_is_announced_once_when_the_last_unit_is_taken(clock):
    ledger = typed(SKU, on_hand=3)
    _, first = reserve(ledger, "r1", 2, now=clock.now())
    _, last = reserve(ledger, "r2", 1, now=clock.now())
    _, commit_events = commit(ledger, "r2", clock.now())

    assert kinds(first) == ["reserved"]
    assert kinds(last) == ["reserved", "sold_out"]
    assert last[1]["available"] == 0
    assert kinds(commit_events) == ["committed"]


def test_the_stock_view_reports_every_counter_and_limit(clock):
    ledger = typed(
        SKU, on_hand=10, sold=1, per_customer_limit=4, low_stock_threshold=2, low_stock_order_cap=1
    )
    reserve(ledger, "r1", 3, now=clock.now())

    assert ledger.stock() == StockView(SKU, 10, 3, 1, 6, 4, 2, 1, ())
    assert ledger.stock(("x",)).revoked == ("x",)
