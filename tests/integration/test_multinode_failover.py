"""A worker node of a multi-node Ray cluster dies under load; the shards move and lose nothing.

The cluster (``ray.cluster_utils.Cluster``: a head and two worker nodes, all on 127.0.0.1)
runs in a subprocess, tests/integration/multinode_scenario.py, because this process may
already belong to the session's single-node Ray. This test owns the SKU and PostgreSQL and
checks the scenario's ledger of acknowledged answers against the durable rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from matchday.inventory.records import SkuRow
from matchday.inventory.routing import Router
from matchday.settings import Settings
from matchday.storage.inventory_repo import InventoryRepository
from tests.conftest import uid

pytestmark = pytest.mark.integration

SCENARIO = Path(__file__).with_name("multinode_scenario.py")
ROOT = SCENARIO.parents[2]
STOCK = 5000  # more than the load buys: it stops on time, not on a sell-out
FANS = 36


def run_scenario(job: dict[str, Any], report: Path) -> dict[str, Any]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(SCENARIO)],
        input=json.dumps({**job, "report": str(report)}),
        capture_output=True,
        text=True,
        timeout=110,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(report.read_text())
    return result


async def rows(repo: InventoryRepository, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with repo.pool.connection() as conn:
        return list(await (await conn.execute(sql, params)).fetchall())


async def test_removing_the_shards_node_under_load_moves_them_and_loses_no_acknowledged_sale(
    settings: Settings, repo: InventoryRepository, tmp_path: Path
) -> None:
    s = settings.model_copy(update={"namespace": uid("multinode"), "dedicated_shards": 1})
    sku = uid("HOT")
    await repo.create_skus([SkuRow(sku, STOCK, 0, 0)], Router(s.shards, s.dedicated_shards))

    job = {"settings": s.payload(), "sku": sku, "fans": FANS, "stock": STOCK}
    report = run_scenario(job, tmp_path / "report.json")

    summary = {k: v for k, v in report.items() if k not in ("reserved", "sold")}
    # The shards ran on node A, and after A died they run again, on B, restarted by Ray.
    a, b = report["node_a"], report["node_b"]
    assert {v["node"] for v in report["before"].values()} == {a}
    assert {v["node"] for v in report["after"].values()} == {b}
    assert all(v["state"] == "ALIVE" for v in report["after"].values())
    assert all(v["restarts"] >= 1 for v in report["after"].values())
    for sid, epoch in report["epochs_before"].items():  # each recovered as a new incarnation
        assert report["epochs_after"][sid] > epoch
    # A was removed with sales in flight, and the shards on B went on selling.
    assert report["restart_s"] is not None and report["restart_s"] < 30
    assert 0 < report["acked_at_removal"] < STOCK
    assert report["acked_after_restart"] >= 150, summary
    assert not report["errors"], report["errors"]

    reserved, sold = set(report["reserved"]), report["sold"]
    assert set(sold) <= reserved
    durable = {
        rid: (status, order)
        for rid, status, order in await rows(
            repo,
            "SELECT reservation_id, status, order_id FROM reservations WHERE sku = %s",
            sku,
        )
    }
    # Every acknowledged hold is in PostgreSQL, and nothing else is: no lost ack, no ghost.
    assert set(durable) == reserved
    for rid, order in sold.items():  # every acknowledged sale, to its own order
        assert durable[rid] == ("committed", order)
    held = {rid for rid, (status, _) in durable.items() if status == "held"}
    assert held == reserved - set(sold)
    row = (await repo.stock_rows([sku]))[sku]
    assert (row.on_hand, row.sold, row.reserved) == (STOCK, len(sold), len(held))
    assert row.sold + row.reserved <= row.on_hand  # never oversold
    (orders,) = await rows(
        repo,
        "SELECT count(*), count(DISTINCT order_id) FROM reservations"
        " WHERE sku = %s AND status = 'committed'",
        sku,
    )
    assert orders == (len(sold), len(sold))  # no order committed twice
    print(
        f"shards back on B {summary['restart_s']} s after A died;"
        f" {summary['acked_at_removal']} holds before, {summary['acked_after_restart']} after;"
        f" {len(reserved)} holds, {len(sold)} sold, {summary['retried']} retried answers"
    )
