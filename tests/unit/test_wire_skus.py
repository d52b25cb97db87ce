"""``wire.skus_of``: a batch's SKUs at C speed, the same set as ``sku_of`` of each mutation."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from matchday.inventory.wire import KINDS, RESERVE, sku_of, skus_of

# Well-formed-looking mutations, and every way the shard's metrics wrapper may see one fail:
# not a tuple, too short, an unknown or non-int kind, a SKU that is not a string (or cannot
# be hashed).
field = st.one_of(st.text(max_size=3), st.integers(), st.none(), st.lists(st.integers()))
good = st.builds(
    lambda k, rid, sku: (k, rid, sku, 1),
    st.integers(0, len(KINDS) - 1),
    st.text(max_size=3),
    st.sampled_from(["A", "B", "C"]),
)
bad = st.one_of(
    st.tuples(st.integers(-2, len(KINDS) + 2), field, field),
    st.tuples(st.booleans(), field, field),
    st.tuples(st.integers(0, 3)),
    st.lists(field, max_size=4),
    st.text(max_size=3),
    st.none(),
)


@given(st.lists(st.one_of(good, good, bad), max_size=8))
def test_skus_of_is_sku_of_each_mutation(batch: list[Any]) -> None:
    assert skus_of(batch) == {s for s in map(sku_of, batch) if s is not None}


def test_a_well_formed_batch_takes_the_fast_path() -> None:
    batch = [(RESERVE, f"rq-{i}", f"SKU-{i % 3}", 1, "cart", "fan", 60.0) for i in range(64)]
    assert skus_of(batch) == {"SKU-0", "SKU-1", "SKU-2"}
    assert skus_of([]) == set()
