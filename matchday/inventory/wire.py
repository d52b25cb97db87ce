"""What crosses Ray between an InventoryClient and a shard: plain tuples, not dataclasses.

Pickling a batch of frozen dataclasses (a Reserve out, an Outcome of a ReservationView back)
cost about 20 us per mutation here, against under 1 us for tuples of the same fields
(cloudpickle, measured 2026-12-02, ADR 0017): Ray's pickler reduces every dataclass through
Python code, and tuples of str, int and float in C.

A mutation is ``(kind, request_id, sku, ...)`` with the fields of its dataclass in order;
an outcome is ``(RESERVATION, *ReservationView fields)``, ``(STOCK, *StockView fields)`` or
``(ERROR, code, args)``. The dataclasses in :mod:`matchday.inventory.commands` stay the typed
API for callers; :func:`to_wire` and :func:`outcome_from_wire` translate at the edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from matchday.domain.errors import InvalidInput, MatchdayError, error_class
from matchday.domain.ids import ID_RE
from matchday.inventory.commands import (
    CHANNEL_RE,
    DEFAULT_POLICY,
    SKU_RE,
    Adjust,
    AdjustLimits,
    Allocate,
    ChannelReserve,
    Commit,
    Expire,
    Extend,
    Mutation,
    Outcome,
    Policy,
    Release,
    ReservationView,
    Reserve,
    Resize,
    Restock,
    Revoke,
    SetOnHand,
    StockView,
)
from matchday.inventory.ids import REQUEST_RE

WireMutation = tuple[Any, ...]
WireOutcome = tuple[Any, ...]

# Mutation kinds: element 0 of a wire mutation, and of a journal entry. REVOKE is journal
# only: a hold that a count revoked. CHANNEL_RESERVE is wire only: it is journaled as a
# RESERVE, its channel on the reservation (ADR 0028).
RESERVE, RELEASE, COMMIT, EXTEND, RESIZE, RESTOCK, SET_ON_HAND, ADJUST_LIMITS, EXPIRE = range(9)
REVOKE, ADJUST, ALLOCATE, CHANNEL_RESERVE = range(9, 13)
KINDS = (
    Reserve,
    Release,
    Commit,
    Extend,
    Resize,
    Restock,
    SetOnHand,
    AdjustLimits,
    Expire,
    Revoke,
    Adjust,
    Allocate,
    ChannelReserve,
)
KIND_NAMES = tuple(cls.kind for cls in KINDS)
_ARITY = tuple(1 + len(cls.__slots__) for cls in KINDS)

# Outcome tags: element 0 of a wire outcome.
RESERVATION, STOCK, ERROR = range(3)


def to_wire(m: Mutation) -> WireMutation:
    code = CODES.get(type(m))
    if code is None:
        raise InvalidInput("kind", f"unknown mutation {type(m).__name__}")
    return (code, *[getattr(m, name) for name in m.__slots__])


def as_wire(m: object) -> WireMutation:
    """A typed mutation as its wire tuple; anything else as it is, for :func:`check`."""
    return to_wire(m) if type(m) in CODES else m  # type: ignore[arg-type,return-value]


def from_wire(w: WireMutation) -> Mutation:
    if w[0] == REVOKE:
        raise InvalidInput("kind", "a revoke is journal only")
    return KINDS[w[0]](*w[1:])  # type: ignore[return-value]


def error(exc: MatchdayError) -> WireOutcome:
    return (ERROR, exc.code, exc.args)


def refusal(cls: type[MatchdayError], *args: Any) -> WireOutcome:
    """An error outcome without building (and raising) the exception: a sold-out flood
    refuses most reserves, and the shard answers each one."""
    return (ERROR, cls.code, args)


def outcome_from_wire(o: WireOutcome) -> Outcome:
    tag = o[0]
    if tag == RESERVATION:
        return Outcome(value=ReservationView(*o[1:]))
    if tag == STOCK:
        return Outcome(value=StockView(*o[1:]))
    return Outcome(error=exception_of(o))


def outcome_to_wire(o: Outcome) -> WireOutcome:
    if o.error is not None:
        return error(o.error)
    v = o.value
    if isinstance(v, ReservationView):
        out = (RESERVATION, *[getattr(v, name) for name in v.__slots__])
        return out if v.channel is not None else out[:-1]  # a shop hold has no channel
    assert isinstance(v, StockView)
    return (STOCK, *[getattr(v, name) for name in v.__slots__])


def value_of(o: WireOutcome) -> ReservationView | StockView:
    """The outcome's view, or its error raised."""
    tag = o[0]
    if tag == RESERVATION:
        return ReservationView(*o[1:])
    if tag == STOCK:
        return StockView(*o[1:])
    raise exception_of(o)


def exception_of(o: WireOutcome) -> MatchdayError:
    """The typed error an error outcome stands for."""
    return error_class(o[1])(*o[2])


def kind_name(m: object) -> str:
    """The kind of a wire mutation, for metrics; "invalid" for anything malformed."""
    if type(m) is tuple and m and type(m[0]) is int and 0 <= m[0] < len(KINDS) and len(m) > 2:
        return str(KIND_NAMES[m[0]])
    return "invalid"


def sku_of(m: object) -> str | None:
    """The SKU of a wire mutation, None for anything malformed."""
    return m[2] if kind_name(m) != "invalid" and type(m[2]) is str else None  # type: ignore[index]


_first, _third = itemgetter(0), itemgetter(2)


def skus_of(batch: Sequence[Any]) -> set[str]:
    """The SKUs of a batch's well-formed mutations: ``sku_of`` of each, at C speed for a
    batch that is all well formed (a call per mutation cost ~0.3 us of a shard's CPU)."""
    try:
        if set(map(type, batch)) <= {tuple} and min(map(len, batch), default=3) > 2:
            kinds, skus = set(map(_first, batch)), set(map(_third, batch))
            if all(type(k) is int and 0 <= k < len(KINDS) for k in kinds) and all(
                type(s) is str for s in skus
            ):
                return skus
    except TypeError:  # an unhashable field: looked at one by one below
        pass
    return {s for s in map(sku_of, batch) if s is not None}


def is_error(o: WireOutcome) -> bool:
    return bool(o[0] == ERROR)


# -- validation ------------------------------------------------------------------------------


def validate(m: Mutation, policy: Policy = DEFAULT_POLICY) -> None:
    """Raise :class:`InvalidInput` for anything malformed; say nothing about stock."""
    bad = check(to_wire(m), policy)
    if bad is not None:
        raise bad


def check(w: object, policy: Policy, known_skus: Any = ()) -> InvalidInput | None:
    """The first malformed field of a wire mutation, or None: nothing about stock.

    ``known_skus`` (a shard's ledgers) skips the pattern match of a SKU already loaded,
    which was checked when it was created.
    """
    if type(w) is not tuple or not w or type(w[0]) is not int or not 0 <= w[0] < len(KINDS):
        return InvalidInput("kind", f"unknown mutation {type(w).__name__}")
    kind = w[0]
    if kind == RESERVE and _reserve_ok(w, policy, known_skus):
        return None
    if kind == REVOKE:  # after the shop's reserve: its path is unchanged by this check
        return InvalidInput("kind", "a revoke is journal only, never a request")
    if len(w) != _ARITY[kind]:
        return InvalidInput("kind", f"a {KIND_NAMES[kind]} has {_ARITY[kind] - 1} fields")
    bad = _bad_request_id(w[1])
    if bad is None:
        sku = w[2]
        if type(sku) is not str or (sku not in known_skus and not SKU_RE.fullmatch(sku)):
            bad = InvalidInput("sku", "must be 1-64 characters of letters, digits, '.', '_', '-'")
    return bad or _CHECKS[kind](w, policy)


def _reserve_ok(w: WireMutation, p: Policy, known_skus: Any) -> bool:
    """The common case, a well-formed reserve, in one call (the checks below take eight):
    False sends it through them to name the first malformed field."""
    if len(w) != 7:
        return False
    _, rid, sku, qty, cart, customer, ttl = w
    return bool(
        type(rid) is str
        and _RID(rid)
        and type(sku) is str
        and (sku in known_skus or _SKU(sku))
        and type(qty) is int
        and 1 <= qty <= p.max_qty_per_request
        and type(cart) is str
        and _ID(cart)
        and type(customer) is str
        and _ID(customer)
        and type(ttl) in (int, float)
        and p.min_ttl_s <= ttl <= p.max_ttl_s  # False for NaN
    )


_ID = ID_RE.fullmatch
_RID = REQUEST_RE.fullmatch
_SKU = SKU_RE.fullmatch


def _bad_id(name: str, value: object) -> InvalidInput | None:
    if type(value) is str and ID_RE.fullmatch(value):
        return None
    return InvalidInput(name, "must be 1-128 characters of letters, digits, '.', '_', ':', '-'")


def _bad_request_id(value: object) -> InvalidInput | None:
    if type(value) is str and _RID(value):
        return None
    return InvalidInput(
        "request_id",
        "must be 1-128 characters of letters, digits, '.', '_', ':', '-',"
        " optionally after a time tag (11 hex digits and '~')",
    )


def _bad_int(name: str, value: object, low: int, high: int) -> InvalidInput | None:
    # bool is an int subclass; True units of a jersey is a bug, not a request.
    if type(value) is not int:
        return InvalidInput(name, "must be a whole number")
    if not low <= value <= high:
        return InvalidInput(name, f"must be between {low} and {high}")
    return None


def _bad_ttl(value: object, policy: Policy) -> InvalidInput | None:
    if type(value) not in (int, float) or value != value:  # NaN
        return InvalidInput("ttl_s", "must be a number of seconds")
    if not policy.min_ttl_s <= value <= policy.max_ttl_s:  # type: ignore[operator]
        return InvalidInput(
            "ttl_s", f"must be between {policy.min_ttl_s:g} and {policy.max_ttl_s:g} seconds"
        )
    return None


def _reserve(w: WireMutation, p: Policy) -> InvalidInput | None:
    return (
        _bad_int("qty", w[3], 1, p.max_qty_per_request)
        or _bad_id("cart_id", w[4])
        or _bad_id("customer_id", w[5])
        or _bad_ttl(w[6], p)
    )


def _reservation(w: WireMutation, p: Policy) -> InvalidInput | None:
    return _bad_id("reservation_id", w[3])


def _commit(w: WireMutation, p: Policy) -> InvalidInput | None:
    return _bad_id("reservation_id", w[3]) or _bad_id("order_id", w[4])


def _extend(w: WireMutation, p: Policy) -> InvalidInput | None:
    return _bad_id("reservation_id", w[3]) or _bad_ttl(w[4], p)


def _resize(w: WireMutation, p: Policy) -> InvalidInput | None:
    return _bad_id("reservation_id", w[3]) or _bad_int("qty", w[4], 1, p.max_qty_per_request)


def _restock(w: WireMutation, p: Policy) -> InvalidInput | None:
    return _bad_int("qty", w[3], 1, p.max_restock)


def _set_on_hand(w: WireMutation, p: Policy) -> InvalidInput | None:
    return _bad_int("units", w[3], 0, p.max_on_hand)


def _bad_channel(value: object) -> InvalidInput | None:
    if type(value) is str and CHANNEL_RE.fullmatch(value):
        return None
    return InvalidInput("channel", "must be 1-32 characters of lowercase letters, digits, '-'")


def _adjust(w: WireMutation, p: Policy) -> InvalidInput | None:
    if w[3] == 0 and type(w[3]) is int:
        return InvalidInput("delta", "must not be 0")
    return _bad_int("delta", w[3], -p.max_on_hand, p.max_restock)


def _allocate(w: WireMutation, p: Policy) -> InvalidInput | None:
    bad = _bad_channel(w[3])
    if bad is None and w[4] is not None:
        bad = _bad_int("max_units", w[4], 0, p.max_limit)
    if bad is None and w[5] is not None:
        bad = _bad_int("max_percent", w[5], 0, 100)
    if bad is None and w[4] is not None and w[5] is not None:
        bad = InvalidInput("max_percent", "give max_units or max_percent, not both")
    return bad


def _channel_reserve(w: WireMutation, p: Policy) -> InvalidInput | None:
    return _reserve(w, p) or _bad_channel(w[7])


def _adjust_limits(w: WireMutation, p: Policy) -> InvalidInput | None:
    for i, name in enumerate(("per_customer_limit", "low_stock_threshold", "low_stock_order_cap")):
        value = w[3 + i]
        if value is not None:
            low = 0 if name == "low_stock_threshold" else 1
            bad = _bad_int(name, value, low, p.max_limit)
            if bad is not None:
                return bad
    return None


_CHECKS = (
    _reserve,
    _reservation,
    _commit,
    _extend,
    _resize,
    _restock,
    _set_on_hand,
    _adjust_limits,
    _reservation,
    _reservation,  # REVOKE: refused before this
    _adjust,
    _allocate,
    _channel_reserve,
)
CODES = {cls: code for code, cls in enumerate(KINDS) if cls is not Revoke}
