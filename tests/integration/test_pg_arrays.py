"""The batch's hand-encoded arrays (matchday/storage/pg_arrays.py) read back in PostgreSQL
exactly as psycopg's own adaptation of the same lists does: every element type the batch
statement uses, NULLs, empty arrays, non-ASCII text and the types' limits."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from matchday.inventory.ids import hold_id, key_hex
from matchday.settings import Settings
from matchday.storage import pg_arrays

pytestmark = pytest.mark.integration

# PostgreSQL's text holds any Unicode but NUL; lone surrogates are not UTF-8 at all.
LETTERS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
TYPES: dict[str, tuple[Callable[[Sequence[Any]], bytes], Any]] = {
    "text": (pg_arrays.text, st.text(alphabet=LETTERS)),
    "smallint": (pg_arrays.int2, st.integers(-(2**15), 2**15 - 1)),
    "int": (pg_arrays.int4, st.integers(-(2**31), 2**31 - 1)),
    "bigint": (pg_arrays.int8, st.integers(-(2**63), 2**63 - 1)),
    "float8": (pg_arrays.float8, st.floats(allow_nan=False)),
}


@pytest.fixture(scope="module")
def conn(settings: Settings) -> Any:
    with psycopg.connect(settings.database_url, autocommit=True) as c:
        yield c


def read_back(conn: Any, sql_type: str, value: Any) -> Any:
    row = conn.execute(f"SELECT %b::{sql_type}[]", (value,)).fetchone()
    return row[0]


@pytest.mark.parametrize("sql_type", list(TYPES))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_an_encoded_array_reads_back_as_psycopgs_list_does(
    conn: Any, sql_type: str, data: st.DataObject
) -> None:
    encode, elements = TYPES[sql_type]
    values = data.draw(st.lists(st.one_of(st.none(), elements), max_size=40))
    expected = read_back(conn, sql_type, values) if values else []
    assert read_back(conn, sql_type, encode(values)) == expected == values


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.one_of(st.none(), st.text(alphabet=LETTERS)), n=st.integers(1, 70))
@example(value="é" * 700, n=3)  # past the table of short lengths
@example(value="", n=64)
def test_a_text_array_of_one_value_throughout_reads_back_as_its_list(
    conn: Any, value: str | None, n: int
) -> None:
    """The fast path for a column with one value (a hot SKU's, the holds' status)."""
    values = [value] * n
    assert read_back(conn, "text", pg_arrays.text(values)) == values
    # PostgreSQL's binary array: dimensions, has-nulls, element type (text: 25), length and
    # lower bound, then each element as its length (-1: NULL) and bytes.
    raw = b"" if value is None else value.encode()
    element = struct.pack(">i", -1) if value is None else struct.pack(">i", len(raw)) + raw
    assert pg_arrays.text(values) == struct.pack(">iiiii", 1, value is None, 25, n, 1) + element * n


def _element_by_element(values: Sequence[str | None]) -> bytes:
    """PostgreSQL's binary text array, one element at a time (the format, spelled out)."""
    out = struct.pack(">iiiii", 1, None in values, 25, len(values), 1)
    for v in values:
        raw = b"" if v is None else v.encode()
        out += struct.pack(">i", -1) if v is None else struct.pack(">i", len(raw)) + raw
    return out


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(
        st.one_of(
            st.text(alphabet=st.characters(max_codepoint=127, blacklist_characters="\x00")),
            st.sampled_from(["x" * 127, "x" * 128, "é", None]),
        ),
        min_size=1,
        max_size=70,
    )
)
@example(values=["t1a2458ddaa7.3ad75023.81e76a51", "t1a2458ddaa8.00000000.ffffffff"])
@example(values=["x" * 127, ""])  # the longest of the short path, and the shortest
def test_ascii_ids_joined_and_encoded_at_once_are_the_same_bytes(
    conn: Any, values: list[str | None]
) -> None:
    """The path for ASCII values under 128 characters (ids, SKUs), and the fall-back for a
    NULL, a longer value or a non-ASCII one, among them."""
    encoded = pg_arrays.text(values)
    assert encoded == _element_by_element(values)
    assert read_back(conn, "text", encoded) == values


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(keys=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=40))
def test_bigints_given_as_hex_read_back_as_the_ints_they_spell(conn: Any, keys: list[int]) -> None:
    """``int8_hex`` takes a derived hold id's key as its 16 hex digits (ids.key_hex)."""
    hexes = [key_hex(hold_id(k)) for k in keys]
    assert pg_arrays.int8_hex(hexes) == pg_arrays.int8(keys)
    assert read_back(conn, "bigint", pg_arrays.int8_hex(hexes)) == keys


def test_an_empty_array_is_empty_not_null(conn: Any) -> None:
    for sql_type, (encode, _) in TYPES.items():
        row = conn.execute(
            f"SELECT %b::{sql_type}[] IS NULL, cardinality(%b::{sql_type}[])",
            (encode([]), encode([])),
        ).fetchone()
        assert row == (False, 0), sql_type


def test_a_value_of_the_wrong_type_is_refused_before_it_is_sent() -> None:
    with pytest.raises(AttributeError):
        pg_arrays.text([1])  # type: ignore[list-item]
    with pytest.raises(struct.error):
        pg_arrays.int2([2**15])
