"""The relay's event text is byte for byte the compact JSON of the events it stands for.

``events_text`` writes a hold's event as text instead of building a dict and encoding it
(issue 12). The ledger tests compare it on every call they make (``ledger_adapter``); this
one sends it what the ledger never makes: any text in a SKU, reservation or cart id, figures
missing from a pre-0017 entry, and every kind of entry in one batch.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from matchday.inventory.journal import events_of, events_text
from matchday.inventory.wire import ADJUST_LIMITS, ALLOCATE, REVOKE

# An entry: (kind, request id, sku, ref, qty, before, after, expires, on_hand, sold, pcl,
# lst, cap), as the journal's parallel arrays hold it.
KINDS = st.integers(min_value=0, max_value=ALLOCATE)
TEXT = st.text(max_size=12)
FIGURE = st.one_of(st.none(), st.integers(min_value=-5, max_value=50))


@st.composite
def entry(draw: Any, rid: str, sku: str) -> tuple[Any, ...]:
    kind = draw(KINDS)
    return (
        kind,
        rid,
        sku,
        draw(TEXT),
        draw(st.integers(min_value=-3, max_value=9)),
        draw(FIGURE),
        draw(FIGURE),
        draw(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False))),
        draw(FIGURE),
        draw(FIGURE),
        draw(FIGURE),
        draw(st.one_of(st.none(), st.integers(min_value=0, max_value=10))),
        draw(FIGURE) if kind != ADJUST_LIMITS else None,
    )


@st.composite
def batches(draw: Any) -> list[tuple[Any, ...]]:
    skus = draw(st.lists(TEXT, min_size=1, max_size=3, unique=True))
    out: list[tuple[Any, ...]] = []
    for n in range(draw(st.integers(min_value=1, max_value=8))):
        sku = draw(st.sampled_from(skus))
        out.append(draw(entry(f"rid-{n}", sku)))
        if draw(st.booleans()):  # a count that revoked a hold: the same request, one step
            revoked = draw(entry(f"rid-{n}", sku))
            out.append((REVOKE, *revoked[1:]))
    return out


@settings(max_examples=300, deadline=None)
@given(
    batches(),
    st.dictionaries(TEXT, TEXT, max_size=4),
    st.dictionaries(TEXT, st.one_of(st.none(), st.integers(0, 10)), max_size=3),
)
def test_the_text_is_the_compact_json_of_the_events(
    entries: list[tuple[Any, ...]], carts: dict[str, str], thresholds: dict[str, int | None]
) -> None:
    for e in entries:  # some refs name a cart: the events carry it
        if e[3] and e[3][0] < "m":
            carts[e[3]] = f'cart {e[3]}\u00e9"'
    expected = {
        sku: json.dumps(events, separators=(",", ":"))
        for sku, events in events_of(entries, carts, thresholds).items()
    }
    assert events_text(entries, carts, thresholds) == expected


def test_a_hold_s_event_is_written_as_text_with_its_cart() -> None:
    entries = [(0, "r1", 'JERSEY "M"', "res-1", 2, 10, 8, 1.5, None, None, None, None, None)]
    text = events_text(entries, {"res-1": "cart-é"}, {'JERSEY "M"': 8})['JERSEY "M"']
    assert text == (
        '[{"type":"reserved","sku":"JERSEY \\"M\\"","available":8,"reservation_id":"res-1",'
        '"cart_id":"cart-\\u00e9","qty":2},'
        '{"type":"low_stock","sku":"JERSEY \\"M\\"","available":8,"threshold":8}]'
    )
