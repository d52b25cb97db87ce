"""validate(), the wire format of mutations and outcomes, and every typed error's pickling."""

from __future__ import annotations

import inspect
import math
import pickle
from dataclasses import replace
from typing import Any

import pytest

from matchday.domain import errors
from matchday.domain.errors import InvalidInput, MatchdayError
from matchday.inventory.commands import (
    AdjustLimits,
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
    SetOnHand,
    StockView,
)
from matchday.inventory.ids import tagged
from matchday.inventory.wire import (
    RESERVE,
    as_wire,
    check,
    from_wire,
    outcome_from_wire,
    outcome_to_wire,
    to_wire,
    validate,
)

YEAR_S = 365 * 24 * 3600.0

VALID: dict[str, Mutation] = {
    "reserve": Reserve("req-1", "JERSEY-M", 2, "cart-1", "cust-1", 600.0),
    "release": Release("req-2", "JERSEY-M", "res-1"),
    "commit": Commit("req-3", "JERSEY-M", "res-1", "order-1"),
    "extend": Extend("req-4", "JERSEY-M", "res-1", 900.0),
    "resize": Resize("req-9", "JERSEY-M", "res-1", 3),
    "restock": Restock("req-5", "JERSEY-M", 50),
    "set_on_hand": SetOnHand("req-6", "JERSEY-M", 0),
    "adjust_limits": AdjustLimits("req-7", "JERSEY-M", 2, 10, 1),
    "expire": Expire("req-8", "JERSEY-M", "res-1"),
}

# Values a caller might send for a quantity that must be refused.
BAD_QTY = [0, -1, -(10**6), 1.5, 2.0, True, False, 10**12, "3", None]
BAD_IDS = [
    "",
    "-starts-with-dash",
    ".starts-with-dot",
    "has space",
    "slash/inside",
    "new\nline",
    "trailing\n",
    "ünïcode",
    "x" * 129,
    "19b1bf5d02b~",  # a time tag and nothing after it
    "19B1BF5D02B~x",  # a tag is lowercase hex
    "x~y",
    123,
    None,
    b"bytes-id",
]
BAD_SKUS = ["", "_lead", "colon:inside", "x" * 65, "tab\tinside", 42, None]
BAD_TTLS = [math.nan, 0, 0.0, -5.0, 0.5, YEAR_S, 3 * YEAR_S, math.inf, -math.inf, True, "600", None]


def refused_field(m: Mutation, policy: Policy | None = None) -> str:
    with pytest.raises(InvalidInput) as info:
        if policy is None:
            validate(m)
        else:
            validate(m, policy)
    assert info.value.field in str(info.value)
    return info.value.field


# -- validate: accepted ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(VALID))
def test_a_well_formed_mutation_of_every_kind_passes_validation(kind: str) -> None:
    assert validate(VALID[kind]) is None


def test_the_longest_allowed_ids_and_skus_and_the_bounds_of_every_range_are_accepted() -> None:
    policy = Policy()
    validate(Reserve("r" * 128, "S" * 64, 1, "c" * 128, "u" * 128, policy.min_ttl_s))
    validate(
        Reserve(
            "a:b_c.d-e", "A.b_C-9", policy.max_qty_per_request, "cart", "cust", policy.max_ttl_s
        )
    )
    validate(Restock("req", "SKU", policy.max_restock))
    validate(SetOnHand("req", "SKU", policy.max_on_hand))
    validate(AdjustLimits("req", "SKU", 1, 0, 1))
    validate(AdjustLimits("req", "SKU", None, None, None))
    validate(Extend("req", "SKU", "res", 3600))  # an int ttl is a number of seconds too


# -- validate: quantities --------------------------------------------------------------------


@pytest.mark.parametrize("qty", BAD_QTY, ids=repr)
def test_a_reservation_of_a_non_positive_fractional_boolean_or_huge_quantity_is_refused(
    qty: Any,
) -> None:
    assert refused_field(replace(VALID["reserve"], qty=qty)) == "qty"


@pytest.mark.parametrize("qty", BAD_QTY, ids=repr)
def test_a_restock_of_a_non_positive_fractional_boolean_or_huge_quantity_is_refused(
    qty: Any,
) -> None:
    assert refused_field(replace(VALID["restock"], qty=qty)) == "qty"


@pytest.mark.parametrize("units", [-1, 0.5, True, 10**10, "5", None], ids=repr)
def test_setting_on_hand_to_a_negative_fractional_boolean_or_huge_count_is_refused(
    units: Any,
) -> None:
    assert refused_field(replace(VALID["set_on_hand"], units=units)) == "units"


def test_quantity_bounds_come_from_the_policy() -> None:
    policy = Policy(max_qty_per_request=4, max_restock=10, max_on_hand=100)

    validate(replace(VALID["reserve"], qty=4), policy)
    assert refused_field(replace(VALID["reserve"], qty=5), policy) == "qty"
    assert refused_field(replace(VALID["restock"], qty=11), policy) == "qty"
    assert refused_field(replace(VALID["set_on_hand"], units=101), policy) == "units"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("per_customer_limit", 0),
        ("per_customer_limit", -1),
        ("per_customer_limit", True),
        ("per_customer_limit", 1.5),
        ("per_customer_limit", 10**7),
        ("low_stock_threshold", -1),
        ("low_stock_threshold", 2.5),
        ("low_stock_threshold", False),
        ("low_stock_order_cap", 0),
        ("low_stock_order_cap", True),
        ("low_stock_order_cap", "2"),
    ],
)
def test_a_limit_that_is_not_a_sensible_whole_number_is_refused_by_name(
    field: str, value: Any
) -> None:
    assert refused_field(replace(VALID["adjust_limits"], **{field: value})) == field


# -- validate: ids and SKUs ------------------------------------------------------------------

ID_FIELDS = [
    ("reserve", "request_id"),
    ("reserve", "cart_id"),
    ("reserve", "customer_id"),
    ("release", "reservation_id"),
    ("commit", "reservation_id"),
    ("commit", "order_id"),
    ("extend", "reservation_id"),
    ("expire", "reservation_id"),
    ("restock", "request_id"),
    ("set_on_hand", "request_id"),
    ("adjust_limits", "request_id"),
]


@pytest.mark.parametrize(("kind", "field"), ID_FIELDS)
@pytest.mark.parametrize("bad", BAD_IDS, ids=lambda v: repr(v)[:20])
def test_a_malformed_or_over_long_id_is_refused_naming_the_field(
    kind: str, field: str, bad: Any
) -> None:
    assert refused_field(replace(VALID[kind], **{field: bad})) == field


@pytest.mark.parametrize(("kind", "field"), ID_FIELDS)
def test_a_time_tag_may_lead_a_request_id_and_no_other_id(kind: str, field: str) -> None:
    tagged_id = tagged("a:b_c.d-e", 1_796_000_000.5)
    m = replace(VALID[kind], **{field: tagged_id})
    if field == "request_id":
        validate(m)
        validate(replace(VALID[kind], request_id=tagged("r" * 128, 0.0)))
    else:
        assert refused_field(m) == field


@pytest.mark.parametrize("kind", sorted(VALID))
@pytest.mark.parametrize("bad", BAD_SKUS, ids=lambda v: repr(v)[:20])
def test_a_malformed_or_over_long_sku_is_refused_for_every_kind(kind: str, bad: Any) -> None:
    assert refused_field(replace(VALID[kind], sku=bad)) == "sku"


# -- validate: TTLs --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["reserve", "extend"])
@pytest.mark.parametrize("ttl", BAD_TTLS, ids=repr)
def test_a_nan_zero_negative_too_short_or_years_long_ttl_is_refused(kind: str, ttl: Any) -> None:
    assert refused_field(replace(VALID[kind], ttl_s=ttl)) == "ttl_s"


def test_ttl_bounds_come_from_the_policy() -> None:
    policy = Policy(min_ttl_s=10.0, max_ttl_s=60.0)

    validate(replace(VALID["extend"], ttl_s=60.0), policy)
    assert refused_field(replace(VALID["extend"], ttl_s=9.99), policy) == "ttl_s"
    assert refused_field(replace(VALID["reserve"], ttl_s=60.01), policy) == "ttl_s"


def test_the_first_malformed_field_is_the_one_named() -> None:
    m = Reserve("bad id", "bad sku", 0, "", "", math.nan)

    assert refused_field(m) == "request_id"
    assert refused_field(replace(m, request_id="ok")) == "sku"
    assert refused_field(replace(m, request_id="ok", sku="SKU")) == "qty"


def test_an_object_that_is_not_a_known_mutation_is_refused() -> None:
    class Forged:
        request_id = "req"
        sku = "SKU"

    assert refused_field(Forged()) == "kind"  # type: ignore[arg-type]


# -- the wire format ----------------------------------------------------------------------


def through_ray(value: Any) -> Any:
    """What crosses Ray is pickled: the round trip must survive that too."""
    return pickle.loads(pickle.dumps(value))


@pytest.mark.parametrize("kind", sorted(VALID))
def test_a_mutation_of_every_kind_crosses_as_a_plain_tuple_and_reads_back_equal(kind: str) -> None:
    wire = to_wire(VALID[kind])

    assert type(wire) is tuple
    assert all(type(x) in (int, float, str, type(None)) for x in wire)
    assert from_wire(through_ray(wire)) == VALID[kind]
    assert check(wire, Policy()) is None


@pytest.mark.parametrize(
    "forged",
    [
        (),
        (RESERVE,),
        (RESERVE, "req-1", "SKU", 1, "cart", "cust"),  # a field short
        (RESERVE, "req-1", "SKU", 1, "cart", "cust", 60.0, "extra"),
        (99, "req-1", "SKU"),
        (-1, "req-1", "SKU"),
        ("0", "req-1", "SKU", 1, "cart", "cust", 60.0),
        (True, "req-1", "SKU", "res-1"),
        [RESERVE, "req-1", "SKU", 1, "cart", "cust", 60.0],
        "reserve",
        None,
    ],
    ids=repr,
)
def test_a_forged_or_truncated_wire_mutation_is_refused_as_an_unknown_kind(forged: Any) -> None:
    bad = check(forged, Policy())

    assert isinstance(bad, InvalidInput)
    assert bad.field == "kind"


@pytest.mark.parametrize(
    "view",
    [
        ReservationView("res-1", "JERSEY-M", 2, "cart-1", "cust-1", 1_800_000_600.25, "held"),
        ReservationView(
            "res-2", "JERSEY-M", 1, "cart-1", "cust-1", 1_800_000_600.0, "committed", "ord-9"
        ),
        StockView("JERSEY-M", 10, 2, 3, 5),
        StockView("JERSEY-M", 10, 2, 3, 5, 4, 3, 1, ("res-3", "res-2")),
    ],
    ids=["held", "committed", "stock", "limits-and-revoked"],
)
def test_a_result_crosses_as_a_plain_tuple_and_reads_back_equal(
    view: ReservationView | StockView,
) -> None:
    wire = outcome_to_wire(Outcome(value=view))

    assert type(wire) is tuple
    assert outcome_from_wire(through_ray(wire)) == Outcome(value=view)


def test_anything_but_a_known_mutation_passes_as_wire_unchanged_for_check_to_refuse() -> None:
    assert as_wire(VALID["release"]) == to_wire(VALID["release"])
    assert as_wire("not a mutation") == "not a mutation"


# One instance of every error class the module defines (the base class included).
SAMPLE_ERRORS: dict[type[MatchdayError], MatchdayError] = {
    errors.MatchdayError: errors.MatchdayError("something went wrong"),
    errors.InvalidInput: errors.InvalidInput("qty", "must be a whole number"),
    errors.UnknownSku: errors.UnknownSku("JERSEY-M"),
    errors.OutOfStock: errors.OutOfStock("JERSEY-M", 3, 1),
    errors.LimitExceeded: errors.LimitExceeded("JERSEY-M", 2, 3, 1, "per-customer"),
    errors.UnknownReservation: errors.UnknownReservation("res-1"),
    errors.ReservationExpired: errors.ReservationExpired("res-1"),
    errors.ReservationClosed: errors.ReservationClosed("res-1", "committed"),
    errors.InvariantViolation: errors.InvariantViolation("JERSEY-M", "cap needs a threshold"),
    errors.WrongShard: errors.WrongShard("JERSEY-M", 3),
    errors.StaleEpoch: errors.StaleEpoch(1, 4, 5),
    errors.Unavailable: errors.Unavailable("database down"),
    errors.NotFound: errors.NotFound("cart", "cart-1"),
    errors.Conflict: errors.Conflict("the cart is checked out"),
    errors.Unauthorized: errors.Unauthorized("missing API key"),
    errors.Forbidden: errors.Forbidden("locked out"),
    errors.RateLimited: errors.RateLimited(2.0),
    errors.Overloaded: errors.Overloaded(1.0),
    errors.CartClosed: errors.CartClosed("cart-1", "checked_out"),
    errors.AllocationExceeded: errors.AllocationExceeded("JER-1", "zalando", 3, 1),
}
CLIENT_ERRORS = [e for cls, e in SAMPLE_ERRORS.items() if cls is not errors.MatchdayError]


def test_the_samples_cover_every_error_class_the_module_defines() -> None:
    defined = {
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, MatchdayError) and obj.__module__ == errors.__name__
    }

    assert defined == set(SAMPLE_ERRORS)
    assert all(type(SAMPLE_ERRORS[cls]) is cls for cls in defined)


@pytest.mark.parametrize("error", CLIENT_ERRORS, ids=lambda e: type(e).__name__)
def test_an_error_outcome_crosses_as_a_plain_tuple_and_reads_back_as_the_same_error(
    error: MatchdayError,
) -> None:
    wire = outcome_to_wire(Outcome(error=error))

    assert type(wire) is tuple and wire[1] == error.code
    back = outcome_from_wire(through_ray(wire))
    assert back.value is None
    assert type(back.error) is type(error)
    assert back.error.args == error.args
    assert str(back.error) == str(error)
    assert back.error.to_dict() == error.to_dict()
    with pytest.raises(type(error)):
        back.unwrap()


@pytest.mark.parametrize("error", list(SAMPLE_ERRORS.values()), ids=lambda e: type(e).__name__)
def test_every_error_pickles_to_an_equal_instance_of_the_same_class(error: MatchdayError) -> None:
    back = pickle.loads(pickle.dumps(error))

    assert type(back) is type(error)
    assert back.args == error.args
    assert back.__dict__ == error.__dict__
    assert str(back) == str(error)
    assert (back.code, back.http_status, back.retryable) == (
        error.code,
        error.http_status,
        error.retryable,
    )


def test_error_codes_are_unique_so_a_record_names_exactly_one_class() -> None:
    codes = [type(e).code for e in CLIENT_ERRORS]

    assert len(codes) == len(set(codes))


def test_an_outcome_with_a_value_unwraps_to_it_and_one_with_an_error_raises_it() -> None:
    view = StockView("S", 1, 0, 0, 1)
    err = errors.OutOfStock("S", 2, 1)

    assert Outcome(value=view).unwrap() is view
    with pytest.raises(errors.OutOfStock) as info:
        Outcome(error=err).unwrap()
    assert info.value is err
