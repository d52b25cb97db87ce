"""The direct statement's placeholders and parameter encoding (matchday/storage/pg_direct.py);
the statements themselves run against PostgreSQL in tests/integration/test_pg_direct.py."""

from __future__ import annotations

import pytest

from matchday.storage import pg_arrays
from matchday.storage.inventory_batch import BATCH_SQL, BATCH_SQL_CHANNELS, BATCH_SQL_HOLDS
from matchday.storage.pg_direct import _value, to_dollars


def test_named_placeholders_become_numbered_and_a_repeated_name_is_one_parameter() -> None:
    query, names = to_dollars("SELECT %(a)s, %(b)b::text[], %(a)s + 1, %(c)s")
    assert query == b"SELECT $1, $2::text[], $1 + 1, $3"
    assert names == ("a", "b", "c")


def test_every_batch_statement_converts_and_names_each_parameter_once() -> None:
    for sql in (BATCH_SQL, BATCH_SQL_HOLDS, BATCH_SQL_CHANNELS):
        query, names = to_dollars(sql)
        assert b"%(" not in query and len(names) == len(set(names))
        assert f"${len(names)}".encode() in query


def test_a_literal_percent_is_refused_rather_than_sent_as_a_placeholder() -> None:
    with pytest.raises(ValueError):
        to_dollars("SELECT 'a%' || %(x)s")
    with pytest.raises(ValueError):
        to_dollars("SELECT %s")


def test_numbers_go_as_the_text_that_reads_back_the_same_and_arrays_as_their_bytes() -> None:
    assert _value(7) == b"7" and _value(-(2**63)) == b"-9223372036854775808"
    assert float(_value(1765000000.123456)) == 1765000000.123456  # type: ignore[arg-type]
    assert _value(None) is None
    array = pg_arrays.int8([1, 2])
    assert _value(array) is array
    with pytest.raises(TypeError):
        _value("text")  # a str would need a type: the batch sends none
    with pytest.raises(TypeError):
        _value(True)
