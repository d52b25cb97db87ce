"""SkuLedger driven by hypothesis against a plain model of ints and dicts."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

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
    Resize,
    Restock,
    SetOnHand,
)
from tests.unit.ledger_adapter import typed

SKU = "SCARF-2026"
CUSTOMERS = ("alice", "bob", "carol")
START = 1_800_000_000.0
UNKNOWN_ID = "never-issued"


@dataclass
class Hold:
    qty: int
    customer: str
    expires_at: float


class LedgerMachine(RuleBasedStateMachine):
    """The model: counters, live holds in creation order, closed statuses, customer units."""

    @initialize(
        on_hand=st.integers(0, 30),
        per_customer_limit=st.none() | st.integers(1, 8),
        threshold=st.none() | st.integers(0, 10),
    )
    def setup(self, on_hand: int, per_customer_limit: int | None, threshold: int | None) -> None:
        self.now = START
        self.ledger = typed(
            SKU,
            on_hand=on_hand,
            per_customer_limit=per_customer_limit,
            low_stock_threshold=threshold,
        )
        self.on_hand = on_hand
        self.reserved = 0
        self.sold = 0
        self.per_customer_limit = per_customer_limit
        self.threshold = threshold
        self.cap: int | None = None
        self.holds: dict[str, Hold] = {}
        self.closed: dict[str, str] = {}
        self.units: dict[str, int] = {}
        # The per-customer limit in force at each customer's last successful reserve.
        self.bound: dict[str, int | None] = {}
        self.issued: list[str] = []
        self.counter = 0

    # -- helpers -----------------------------------------------------------------------------

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved - self.sold

    def any_id(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from([*self.issued, UNKNOWN_ID]), label="reservation_id")

    def expected_lookup_error(self, rid: str) -> MatchdayError | None:
        if rid in self.holds:
            return None
        if rid in self.closed:
            return ReservationClosed(rid, self.closed[rid])
        return UnknownReservation(rid)

    def close(self, rid: str, status: str) -> None:
        h = self.holds.pop(rid)
        self.reserved -= h.qty
        if status != "committed":
            self.units[h.customer] -= h.qty
        self.closed[rid] = status

    def assert_error(self, exc: MatchdayError, expected: MatchdayError) -> None:
        assert type(exc) is type(expected), (exc, expected)
        assert exc.args == expected.args, (exc.args, expected.args)
        assert self.ledger.drain_dirty() == ([], []), "an error must leave nothing to persist"

    def totals(self, customers: dict[str, int]) -> dict[str, int]:
        """What the ledger reports of customer totals: kept only under a per-customer limit."""
        return customers if self.per_customer_limit is not None else {}

    def bought(self) -> dict[str, int]:
        """Units each customer bought: all they hold or bought, less what they hold."""
        held: dict[str, int] = {}
        for h in self.holds.values():
            held[h.customer] = held.get(h.customer, 0) + h.qty
        return {c: u - held.get(c, 0) for c, u in self.units.items()}

    def dirty_ids(self) -> tuple[set[str], dict[str, int]]:
        reservations, customers = self.ledger.drain_dirty()
        return {r.reservation_id for r in reservations}, dict(customers)

    # -- rules -------------------------------------------------------------------------------

    @rule(
        qty=st.integers(1, 5),
        customer=st.sampled_from(CUSTOMERS),
        ttl=st.sampled_from([1.0, 5.0, 30.0, 120.0]),
    )
    def reserve(self, qty: int, customer: str, ttl: float) -> None:
        self.counter += 1
        rid = f"res-{self.counter}"
        held = self.units.get(customer, 0)
        expected: MatchdayError | None = None
        if (
            self.cap is not None
            and self.threshold is not None
            and self.available <= self.threshold
            and qty > self.cap
        ):
            expected = LimitExceeded(SKU, self.cap, qty, 0, "low-stock per-order")
        elif self.per_customer_limit is not None and held + qty > self.per_customer_limit:
            expected = LimitExceeded(SKU, self.per_customer_limit, qty, held, "per-customer")
        elif qty > self.available:
            expected = OutOfStock(SKU, qty, self.available)

        m = Reserve(f"req-{self.counter}", SKU, qty, f"cart-{customer}", customer, ttl)
        try:
            view, events = self.ledger.reserve(m, rid, self.now)
        except MatchdayError as exc:
            assert expected is not None, f"unexpected refusal {exc!r}"
            self.assert_error(exc, expected)
            return
        assert expected is None, f"should have been refused with {expected!r}"
        assert (view.reservation_id, view.qty, view.status) == (rid, qty, "held")
        assert view.expires_at == self.now + ttl
        assert events[0]["type"] == "reserved"
        self.issued.append(rid)
        self.holds[rid] = Hold(qty, customer, self.now + ttl)
        self.reserved += qty
        self.units[customer] = held + qty
        self.bound[customer] = self.per_customer_limit
        assert self.dirty_ids() == ({rid}, self.totals({customer: held + qty}))

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        rid = self.any_id(data)
        expected = self.expected_lookup_error(rid)
        try:
            view, _ = self.ledger.release(Release("req-rel", SKU, rid), self.now)
        except MatchdayError as exc:
            assert expected is not None, f"unexpected refusal {exc!r}"
            self.assert_error(exc, expected)
            return
        assert expected is None
        assert view.status == "released"
        customer = self.holds[rid].customer
        self.close(rid, "released")
        assert self.dirty_ids() == ({rid}, self.totals({customer: self.units[customer]}))

    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        rid = self.any_id(data)
        expected = self.expected_lookup_error(rid)
        if expected is None and self.holds[rid].expires_at <= self.now:
            expected = ReservationExpired(rid)
        try:
            view, _ = self.ledger.commit(Commit("req-com", SKU, rid, f"order-{rid}"), self.now)
        except MatchdayError as exc:
            assert expected is not None, f"unexpected refusal {exc!r}"
            self.assert_error(exc, expected)
            return
        assert expected is None
        assert (view.status, view.order_id) == ("committed", f"order-{rid}")
        qty = self.holds[rid].qty
        self.close(rid, "committed")
        self.sold += qty
        assert self.dirty_ids() == ({rid}, {})

    @rule(data=st.data(), ttl=st.sampled_from([1.0, 10.0, 60.0]))
    def extend(self, data: st.DataObject, ttl: float) -> None:
        rid = self.any_id(data)
        expected = self.expected_lookup_error(rid)
        if expected is None and self.holds[rid].expires_at <= self.now:
            expected = ReservationExpired(rid)
        try:
            view, _ = self.ledger.extend(Extend("req-ext", SKU, rid, ttl), self.now)
        except MatchdayError as exc:
            assert expected is not None, f"unexpected refusal {exc!r}"
            self.assert_error(exc, expected)
            return
        assert expected is None
        lasts = max(self.holds[rid].expires_at, self.now + ttl)  # never shortened
        assert view.expires_at == lasts
        moved = lasts != self.holds[rid].expires_at
        self.holds[rid].expires_at = lasts
        assert self.dirty_ids() == (({rid} if moved else set()), {})

    @rule(data=st.data(), qty=st.integers(1, 6))
    def resize(self, data: st.DataObject, qty: int) -> None:
        rid = self.any_id(data)
        expected = self.expected_lookup_error(rid)
        if expected is None and self.holds[rid].expires_at <= self.now:
            expected = ReservationExpired(rid)
        if expected is None:
            h = self.holds[rid]
            delta = qty - h.qty
            held = self.units.get(h.customer, 0)
            if delta <= 0:
                pass
            elif (
                self.cap is not None
                and self.threshold is not None
                and self.available <= self.threshold
                and qty > self.cap
            ):
                expected = LimitExceeded(SKU, self.cap, qty, 0, "low-stock per-order")
            elif self.per_customer_limit is not None and held + delta > self.per_customer_limit:
                expected = LimitExceeded(SKU, self.per_customer_limit, delta, held, "per-customer")
            elif delta > self.available:
                expected = OutOfStock(SKU, delta, self.available)
        try:
            view, events = self.ledger.resize(Resize("req-rsz", SKU, rid, qty), self.now)
        except MatchdayError as exc:
            assert expected is not None, f"unexpected refusal {exc!r}"
            self.assert_error(exc, expected)
            return
        assert expected is None, f"should have been refused with {expected!r}"
        h = self.holds[rid]
        delta = qty - h.qty
        assert (view.qty, view.status, view.expires_at) == (qty, "held", h.expires_at)
        assert events[0]["type"] == "resized"
        h.qty = qty
        self.reserved += delta
        self.units[h.customer] += delta
        if delta > 0:
            self.bound[h.customer] = self.per_customer_limit
        assert self.dirty_ids() == ({rid}, self.totals({h.customer: self.units[h.customer]}))

    @rule(seconds=st.sampled_from([0.5, 1.0, 7.0, 40.0]))
    def advance_time_without_timers_firing(self, seconds: float) -> None:
        # Leaves due reservations held, as when the shard's timer has not fired yet.
        self.now += seconds

    @rule(seconds=st.sampled_from([0.0, 1.0, 5.0, 30.0, 200.0]), data=st.data())
    def expire(self, seconds: float, data: st.DataObject) -> None:
        self.now += seconds
        due = [rid for rid, h in self.holds.items() if h.expires_at <= self.now]
        for rid in due:
            customer = self.holds[rid].customer
            result = self.ledger.expire(Expire("req-exp", SKU, rid), self.now)
            assert result is not None, f"{rid} was due at {self.holds[rid].expires_at}"
            assert result[0].status == "expired"
            self.close(rid, "expired")
            assert self.dirty_ids() == ({rid}, self.totals({customer: self.units[customer]}))
        # A stale timer (reservation closed, unknown, or not due yet) changes nothing.
        stale = self.any_id(data)
        if stale not in self.holds or self.holds[stale].expires_at > self.now:
            assert self.ledger.expire(Expire("req-exp", SKU, stale), self.now) is None
            assert self.ledger.drain_dirty() == ([], [])

    @rule(qty=st.integers(1, 20))
    def restock(self, qty: int) -> None:
        view, _ = self.ledger.restock(Restock("req-restock", SKU, qty), self.now)
        self.on_hand += qty
        assert (view.on_hand, view.available) == (self.on_hand, self.available)

    @rule(units=st.integers(0, 30))
    def set_on_hand(self, units: int) -> None:
        expected_revoked: list[str] = []
        for rid in reversed(list(self.holds)):
            if self.reserved <= units:
                break
            self.close(rid, "revoked")
            expected_revoked.append(rid)
        self.on_hand = self.sold + units
        view, events = self.ledger.set_on_hand(SetOnHand("req-set", SKU, units), self.now)
        assert list(view.revoked) == expected_revoked
        assert [e["reservation_id"] for e in events if e["type"] == "revoked"] == expected_revoked
        assert view.available == self.available == units - self.reserved
        assert self.dirty_ids()[0] == set(expected_revoked)

    @rule(
        per_customer_limit=st.none() | st.integers(1, 8),
        threshold=st.none() | st.integers(0, 10),
        cap=st.none() | st.integers(1, 4),
    )
    def adjust_limits(
        self, per_customer_limit: int | None, threshold: int | None, cap: int | None
    ) -> None:
        m = AdjustLimits("req-limits", SKU, per_customer_limit, threshold, cap)
        if cap is not None and threshold is None:
            try:
                self.ledger.adjust_limits(m, self.now)
            except InvariantViolation as exc:
                assert exc.args[0] == SKU
                assert self.ledger.drain_dirty() == ([], [])
                return
            raise AssertionError("a cap without a threshold must be refused")
        starts = per_customer_limit is not None and self.per_customer_limit is None
        view, _ = self.ledger.adjust_limits(m, self.now, self.bought() if starts else None)
        self.per_customer_limit, self.threshold, self.cap = per_customer_limit, threshold, cap
        assert (view.per_customer_limit, view.low_stock_threshold, view.low_stock_order_cap) == (
            per_customer_limit,
            threshold,
            cap,
        )
        # A limit set anew starts the totals of every customer who holds or bought units.
        expected = {c: u for c, u in self.units.items() if u} if starts else {}
        assert dict(self.ledger.drain_dirty()[1]) == expected

    @precondition(lambda self: bool(self.holds))
    @rule()
    def next_deadline_matches_the_model(self) -> None:
        for rid, h in self.holds.items():
            assert self.ledger.next_deadline(rid) == h.expires_at

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def counters_never_go_negative_and_never_oversell(self) -> None:
        lg = self.ledger
        assert lg.reserved >= 0
        assert lg.sold >= 0
        assert lg.available == lg.on_hand - lg.reserved - lg.sold
        assert lg.available >= 0
        assert lg.sold <= lg.on_hand

    @invariant()
    def reserved_is_the_sum_of_live_holds(self) -> None:
        assert self.ledger.reserved == sum(r.qty for r in self.ledger.held.values())
        assert all(r.status == "held" for r in self.ledger.held.values())

    @invariant()
    def no_customer_exceeds_the_limit_in_force_when_they_last_reserved(self) -> None:
        totals = self.ledger.customer_units
        for customer, bound in self.bound.items():
            if bound is not None:
                held = (self.units if totals is None else totals).get(customer, 0)
                assert held <= bound

    @invariant()
    def the_ledger_agrees_with_the_model(self) -> None:
        lg = self.ledger
        assert (lg.on_hand, lg.reserved, lg.sold) == (self.on_hand, self.reserved, self.sold)
        assert {rid: (r.qty, r.customer_id, r.expires_at) for rid, r in lg.held.items()} == {
            rid: (h.qty, h.customer, h.expires_at) for rid, h in self.holds.items()
        }
        # Creation order matters: set_on_hand revokes the newest first.
        assert list(lg.held) == list(self.holds)
        if self.per_customer_limit is None:
            assert lg.customer_units is None  # no limit: no totals kept
        else:
            assert lg.customer_units == {c: u for c, u in self.units.items() if u}
        assert (lg.per_customer_limit, lg.low_stock_threshold, lg.low_stock_order_cap) == (
            self.per_customer_limit,
            self.threshold,
            self.cap,
        )


LedgerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestLedgerMachine = LedgerMachine.TestCase
