"""Reading the journal: a retried request's first answer, and the events of a batch.

The shard journals each change as one compact entry (``ledger.Entry``) and nothing else:
no answer and no event is stored. Both are derived here from the entries, by the shard's
storage (answers, for a request retried after a restart) and by the outbox relay (events),
so the fake repository and PostgreSQL derive them with the same code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from matchday.domain.errors import InvalidInput
from matchday.inventory.wire import (
    ADJUST,
    ADJUST_LIMITS,
    ALLOCATE,
    COMMIT,
    EXPIRE,
    EXTEND,
    RELEASE,
    RESERVATION,
    RESERVE,
    RESIZE,
    RESTOCK,
    REVOKE,
    SET_ON_HAND,
    STOCK,
    WireOutcome,
    refusal,
)

Event = dict[str, Any]
T = TypeVar("T")

STOCK_KINDS = frozenset({RESTOCK, SET_ON_HAND, ADJUST_LIMITS, ADJUST, ALLOCATE})
STATUS = {
    RESERVE: "held",
    EXTEND: "held",
    RESIZE: "held",
    RELEASE: "released",
    COMMIT: "committed",
    EXPIRE: "expired",
    REVOKE: "revoked",
}
EVENT_TYPES = (
    "reserved",
    "released",
    "committed",
    "extended",
    "resized",
    "restocked",
    "stock_set",
    "limits_changed",
    "expired",
    "revoked",
    "stock_adjusted",
    "allocation_set",
)

COLLIDES = refusal(
    InvalidInput, "request_id", "collides with an earlier request's; send it under another id"
)

# A journaled change joined with its reservation: (request_id, kind, sku, reservation_id,
# qty, available_after, expires_at, on_hand, sold, per_customer_limit, low_stock_threshold,
# low_stock_order_cap, cart_id, customer_id, order_id[, channel]), in journal order.
AnswerRow = Sequence[Any]


def answers(rows: Iterable[AnswerRow]) -> dict[str, WireOutcome]:
    """The first answer of each journaled request among ``rows``.

    A row whose kind is None is a request id whose journal key belongs to another one (a
    64-bit collision): it can never be journaled, so it is refused, and only it. A request
    id found in two batches (a reserve's hold and another kind's key, ADR 0034) keeps the
    earlier batch's answer (rows come in journal order).
    """
    out: dict[str, WireOutcome] = {}
    revoked: dict[str, list[str]] = {}
    for rid, kind, sku, ref, qty, after, expires, on_hand, sold, pcl, lst, cap, *res in rows:
        if kind is None:
            out.setdefault(rid, COLLIDES)
        elif out.get(rid, COLLIDES) is not COLLIDES:
            continue
        elif kind == REVOKE:
            revoked.setdefault(rid, []).append(ref)
        elif kind in STOCK_KINDS:
            reserved = on_hand - sold - after
            revs = tuple(revoked.get(rid, ()))
            out[rid] = (STOCK, sku, on_hand, reserved, sold, after, pcl, lst, cap, revs)
        else:
            cart, customer, order, *channel = res
            order = order if kind == COMMIT else None
            answer = (RESERVATION, ref, sku, qty, cart, customer, expires, STATUS[kind], order)
            out[rid] = (*answer, channel[0]) if channel and channel[0] is not None else answer
    return out


def events_of(
    entries: Iterable[Sequence[Any]],
    carts: Mapping[str, str],
    thresholds: Mapping[str, int | None],
) -> dict[str, list[Event]]:
    """Per SKU, in journal order, the events a batch's entries announce.

    A request's entries are one step (a count and the holds it revoked): each event carries
    the availability after the step, and low_stock / sold_out / back_in_stock compare the
    availability before and after it. ``carts`` names each reservation's cart and
    ``thresholds`` each SKU's low-stock threshold (a stock change carries its own).
    """
    return _events(entries, carts, thresholds, _event, _same)


def events_text(
    entries: Iterable[Sequence[Any]],
    carts: Mapping[str, str],
    thresholds: Mapping[str, int | None],
) -> dict[str, str]:
    """:func:`events_of`, each SKU's list as the compact JSON text a stream entry carries:
    byte for byte ``json.dumps(events, separators=(",", ":"))``, but a hold's event (nearly
    every event) is written as text, not built as a dict and encoded. The dict and its
    encoding were half of the outbox relay's CPU per reserve (issue 12)."""
    texts = _events(entries, carts, thresholds, _event_text, _compact)
    return {sku: "[" + ",".join(t) + "]" for sku, t in texts.items()}


# What json's encoder writes for a str with ensure_ascii (its C function), and for the rest.
_string = json.encoder.encode_basestring_ascii
_compact = json.JSONEncoder(separators=(",", ":")).encode


def _same(event: Event) -> Event:
    return event


def _event(
    kind: int, sku: str, available: Any, e: Sequence[Any], carts: Mapping[str, str]
) -> Event:
    event: Event = {"type": EVENT_TYPES[kind], "sku": sku, "available": available}
    if kind == RESTOCK:
        event["qty"] = e[4]
    elif kind == SET_ON_HAND:
        event["units"] = e[4]
    elif kind == ADJUST:
        event["delta"] = e[4]
    elif kind == ALLOCATE:
        event["channel"] = e[3]
    elif kind not in STOCK_KINDS:
        event.update(reservation_id=e[3], cart_id=carts.get(e[3]), qty=e[4])
    return event


def _event_text(
    kind: int, sku: str, available: Any, e: Sequence[Any], carts: Mapping[str, str]
) -> str:
    ref, qty = e[3], e[4]
    if (
        kind in STOCK_KINDS
        or type(available) is not int
        or type(qty) is not int
        or type(ref) is not str
    ):
        return _compact(_event(kind, sku, available, e, carts))
    cart = carts.get(ref)
    return (
        f'{{"type":"{EVENT_TYPES[kind]}","sku":{_string(sku)},"available":{available},'
        f'"reservation_id":{_string(ref)},"cart_id":{"null" if cart is None else _string(cart)},'
        f'"qty":{qty}}}'
    )


def _events(
    entries: Iterable[Sequence[Any]],
    carts: Mapping[str, str],
    thresholds: Mapping[str, int | None],
    render: Callable[[int, str, Any, Sequence[Any], Mapping[str, str]], T],
    crossing: Callable[[Event], T],
) -> dict[str, list[T]]:
    events: dict[str, list[T]] = {}
    step: list[Sequence[Any]] = []
    for e in entries:
        if step and (e[1] != step[0][1] or e[2] != step[0][2]):
            _announce(step, carts, thresholds, events, render, crossing)
            step = []
        step.append(e)
    if step:
        _announce(step, carts, thresholds, events, render, crossing)
    return events


def _announce(
    step: list[Sequence[Any]],
    carts: Mapping[str, str],
    thresholds: Mapping[str, int | None],
    events: dict[str, list[T]],
    render: Callable[[int, str, Any, Sequence[Any], Mapping[str, str]], T],
    crossing: Callable[[Event], T],
) -> None:
    sku = step[0][2]
    available = step[-1][6]
    out = events.setdefault(sku, [])
    for e in step:
        out.append(render(e[0], sku, available, e, carts))
    before, last = step[0][5], step[-1]
    if before is None or available is None or last[0] in (ADJUST_LIMITS, ALLOCATE):
        return  # a limits change announces no crossing; a pre-0017 entry has no figures
    t = last[11] if last[0] in STOCK_KINDS else thresholds.get(sku)
    if t is not None and available <= t < before:
        out.append(
            crossing({"type": "low_stock", "sku": sku, "available": available, "threshold": t})
        )
    if available == 0 < before:
        out.append(crossing({"type": "sold_out", "sku": sku, "available": available}))
    if before == 0 < available:
        out.append(crossing({"type": "back_in_stock", "sku": sku, "available": available}))
