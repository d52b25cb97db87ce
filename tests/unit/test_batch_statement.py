"""The shard's batch statement stays within what psycopg caches (its conversion of the
``%(name)s`` placeholders): past 4,096 characters or 50 parameters psycopg re-parses the text
for every batch, 80 us of the shard's CPU each time (matchday/storage/inventory_batch.py)."""

from __future__ import annotations

import re

import pytest
from psycopg import _queries

from matchday.storage import inventory_batch


@pytest.mark.parametrize("name", ["BATCH_SQL", "LOOKUP_SQL"])
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
