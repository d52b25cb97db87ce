"""SkuLedger through typed calls, for the ledger's example and property tests.

The ledger answers wire tuples and records its changes in a batch's ``Changes``; these tests
state its behaviour as typed calls instead: a mutation dataclass in, ``(view, events)`` out,
a refusal raised as its typed error. The events are derived from the call's journal entries
by ``journal.events_of``, the relay's own derivation, so these tests pin it down too, and
the text the relay sends (``events_text``) as its compact JSON.
``drain_dirty`` reports what the calls since the last drain would write: the reservations
and the customer totals.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from matchday.inventory.changes import Changes, Reservation, reservation_view
from matchday.inventory.commands import (
    AdjustLimits,
    Commit,
    Expire,
    Extend,
    Release,
    ReservationView,
    Reserve,
    Resize,
    Restock,
    SetOnHand,
)
from matchday.inventory.journal import Event, events_of, events_text
from matchday.inventory.ledger import SkuLedger
from matchday.inventory.wire import ERROR, exception_of, to_wire, value_of


class TypedLedger:
    def __init__(self, ledger: SkuLedger) -> None:
        self.ledger = ledger
        self.last: Changes | None = None
        self._dirty: dict[str, Reservation] = {}
        self._customers: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ledger, name)

    @property
    def held(self) -> dict[str, ReservationView]:
        """The held reservations, as views (the ledger keeps them as wire tuples)."""
        return {rid: reservation_view(r) for rid, r in self.ledger.held.items()}

    def _call(self, method: str, m: Any, now: float, new_id: str = "", **kw: Any) -> Any:
        ch = Changes(lambda _request_id: new_id)
        out = getattr(self.ledger, method)(ch, to_wire(m), now, **kw)
        self.last = ch
        if out is None:
            return None
        if out[0] == ERROR:
            assert not ch.entries and not ch.touched, "a refusal must change nothing"
            raise exception_of(out)
        self._dirty.update(ch.created)
        self._dirty.update(ch.changed)
        self._customers.update(c for _, c in ch.customers)
        holds = [reservation_view(r) for r in (*ch.created.values(), *ch.changed.values())]
        carts = {r.reservation_id: r.cart_id for r in holds}
        thresholds = {self.ledger.sku: self.ledger.low_stock_threshold}
        events = events_of(ch.entries, carts, thresholds)
        # The relay's text of the same events is byte for byte their compact JSON.
        texts = events_text(ch.entries, carts, thresholds)
        assert texts == {sku: json.dumps(ev, separators=(",", ":")) for sku, ev in events.items()}
        return value_of(out), events.get(self.ledger.sku, [])

    def reserve(self, m: Reserve, reservation_id: str, now: float) -> Any:
        return self._call("reserve", m, now, reservation_id)

    def release(self, m: Release, now: float) -> Any:
        return self._call("release", m, now)

    def commit(self, m: Commit, now: float) -> Any:
        return self._call("commit", m, now)

    def extend(self, m: Extend, now: float) -> Any:
        return self._call("extend", m, now)

    def resize(self, m: Resize, now: float) -> Any:
        return self._call("resize", m, now)

    def expire(self, m: Expire, now: float) -> Any:
        return self._call("expire", m, now)

    def restock(self, m: Restock, now: float) -> Any:
        return self._call("restock", m, now)

    def set_on_hand(self, m: SetOnHand, now: float) -> Any:
        return self._call("set_on_hand", m, now)

    def adjust_limits(
        self, m: AdjustLimits, now: float, bought: Mapping[str, int] | None = None
    ) -> Any:
        if bought is None and self.ledger.needs_bought(to_wire(m)):
            bought = {}
        return self._call("adjust_limits", m, now, bought=bought)

    def drain_dirty(self) -> tuple[list[ReservationView], list[tuple[str, int]]]:
        reservations = [reservation_view(r) for r in self._dirty.values()]
        totals = self.ledger.customer_units
        customers = [(c, totals.get(c, 0)) for c in self._customers] if totals is not None else []
        self._dirty.clear()
        self._customers.clear()
        return reservations, customers


def typed(*args: Any, **kwargs: Any) -> TypedLedger:
    return TypedLedger(SkuLedger(*args, **kwargs))


__all__ = ["Event", "TypedLedger", "typed"]
