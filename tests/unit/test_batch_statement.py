"""The shard's batch statement stays within what psycopg caches (its conversion of the
``%(name)s`` placeholders): past 4,096 characters or 50 parameters psycopg re-parses the text
for every batch, 80 us of the shard's CPU each time (matchday/storage/inventory_batch.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from psycopg import _queries

from matchday.inventory.records import BatchWrite, SkuRow
from matchday.inventory.wire import RELEASE, RESERVATION, RESERVE
from matchday.storage import inventory_batch


@pytest.mark.parametrize("name", ["BATCH_SQL", "BATCH_SQL_HOLDS", "LOOKUP_SQL"])
def test_the_hot_statements_fit_psycopgs_cache(name: str) -> None:
    sql: str = getattr(inventory_batch, name)
    assert len(sql.encode()) <= _queries.MAX_CACHED_STATEMENT_LENGTH, len(sql)
    assert len(set(re.findall(r"%\((\w+)\)[sbt]", sql))) <= _queries.MAX_CACHED_STATEMENT_PARAMS


def test_compacting_keeps_every_literal_and_placeholder() -> None:
    sql = inventory_batch.BATCH_SQL
    assert "\n" not in sql and "  " not in sql
    assert "'unknown_sku a new reservation names a SKU not counted'" in sql
    assert "'stale_epoch ' ||" in sql
    assert "%(n_requests)s" in sql and "%(rn_expires)b::float8[]" in sql


def _batch(**parts: Any) -> BatchWrite:
    hold = (RESERVATION, "r00000001.00000002", "SKU-1", 1, "cart-1", "fan-1", 600.0, "held", None)
    entry = (RESERVE, "rq-1", "SKU-1", hold[1], 1, 10, 9, 600.0)
    return BatchWrite(0, 1, 0.0, [entry], [SkuRow("SKU-1", 10, 1, 0)], [hold], **parts)


def test_a_batch_of_new_holds_only_leaves_out_what_it_would_leave_empty() -> None:
    holds = inventory_batch.BATCH_SQL_HOLDS
    assert holds.startswith(inventory_batch.BATCH_SQL[:200])
    for cte in ("), ru AS (", "), cu AS (", "), d AS (", "%(key_holds)b", "%(n_changed)s"):
        assert cte in inventory_batch.BATCH_SQL and cte not in holds
    # A reserve whose request id another kind of request stored as its key is still refused.
    assert "inventory_requests WHERE key = ANY(%(hold_keys)b::bigint[])) THEN" in holds

    assert inventory_batch.batch_sql(_batch())[0] == holds
    changed = (RESERVATION, "r9", "SKU-1", 1, "cart-1", "fan-1", 600.0, "released", None)
    full = [
        _batch(changed=[changed]),
        _batch(customer_units=[("SKU-1", "fan-1", 1)]),
        BatchWrite(0, 1, 0.0, [(RELEASE, "rq-2", "SKU-1", "r9", 1, 9, 10)], [], []),
    ]
    for batch in full:
        assert inventory_batch.batch_sql(batch)[0] == inventory_batch.BATCH_SQL


def test_each_array_a_statement_names_is_encoded_once_and_no_other() -> None:
    from matchday.storage.pg_arrays import PgArray, text

    sql, params = inventory_batch.batch_sql(_batch())
    named = set(re.findall(r"%\((\w+)\)b", sql))
    assert {k for k, v in params.items() if isinstance(v, PgArray)} == named
    # Left out of the holds-only statement, so left as they were.
    assert params["ru_id"] == [] and params["cu_sku"] == []
    # A hold's id and cart go to its row and to the journal's entry: one encoding each.
    assert params["refs"] is params["rn_id"] and params["e_carts"] is params["rn_cart"]
    assert params["rn_id"] == text(["r00000001.00000002"])
    # Equal values of another type are encoded for that type.
    assert params["qtys"] == inventory_batch._ARRAYS["qtys"]([1])
    assert params["rn_qty"] == inventory_batch._ARRAYS["rn_qty"]([1])
    assert params["qtys"] != params["rn_qty"]  # bigint[] and int[]
