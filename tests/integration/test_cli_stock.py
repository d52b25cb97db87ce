"""`matchday stock` prints PostgreSQL's counters for the SKUs asked for, and names unknown
ones (it crashed once the engine's rows became named tuples: no test ran it)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cluster.cli import main as cli_main
from matchday.inventory.records import SkuRow
from matchday.inventory.routing import Router
from matchday.settings import Settings
from matchday.storage.db import make_pool
from matchday.storage.inventory_repo import InventoryRepository
from tests.conftest import uid

pytestmark = pytest.mark.integration


async def create(settings: Settings, row: SkuRow) -> None:
    pool = make_pool(settings.database_url, max_size=1)
    await pool.open()
    try:
        router = Router(settings.shards, settings.dedicated_shards)
        await InventoryRepository(pool).create_skus([row], router)
    finally:
        await pool.close()


def test_stock_prints_the_durable_counters_and_names_unknown_skus(  # sync: the CLI runs a loop
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sku = uid("CLI").upper()
    row = SkuRow(sku, 12, 0, 0, per_customer_limit=2)
    asyncio.run(create(settings, row))
    monkeypatch.setenv("MATCHDAY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MATCHDAY_DATA_DIR", str(tmp_path / "data"))
    assert cli_main(["stock", sku, "NO-SUCH-SKU"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed[sku] == {
        "sku": sku, "on_hand": 12, "reserved": 0, "sold": 0, "per_customer_limit": 2,
        "low_stock_threshold": None, "low_stock_order_cap": None, "available": 12,
    }  # fmt: skip
    assert printed["unknown"] == ["NO-SUCH-SKU"]
