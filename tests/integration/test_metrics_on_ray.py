"""Business metrics as Prometheus scrapes them: real shards on Ray, Ray's own endpoint."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors.client import connect_client, start_inventory, stop_inventory
from actors.pinning import pin_sku
from matchday.domain.errors import OutOfStock
from matchday.inventory.commands import Reserve
from matchday.inventory.records import SkuRow
from matchday.inventory.routing import Router
from matchday.settings import Settings
from matchday.storage.inventory_repo import InventoryRepository
from tests.conftest import uid

pytestmark = pytest.mark.integration

# Ray's workers report every 10 s (metrics_report_interval_ms) and the agent exports on the
# next scrape: measured 10-20 s on this machine from the record to the endpoint.
EXPORT_WAIT_S = 35.0
DEDICATED = 2  # shards 0 and 1 on the ring, shard 2 for pinned SKUs


@pytest.fixture(scope="module")
def engine(settings: Settings, ray_session: Any) -> Iterator[tuple[Settings, dict[int, Any]]]:
    s = settings.model_copy(update={"shards": 2, "dedicated_shards": 1})
    handles = start_inventory(s)
    try:
        yield s, handles
    finally:
        stop_inventory(s)


def metrics_url() -> str:
    import ray

    node = ray._private.worker.global_worker.node
    return f"http://{node.node_ip_address}:{node.metrics_export_port}/metrics"


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(url, timeout=5) as resp:  # loopback only (ADR 0004)
        text = resp.read().decode()
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **tags: str) -> float:
    want = set(tags.items())
    return sum(v for n, labels, v in samples if n == name and want <= set(labels.items()))


async def test_reserves_and_a_refused_oversell_show_up_on_rays_prometheus_endpoint(
    engine: tuple[Settings, dict[int, Any]], repo: InventoryRepository
) -> None:
    s, handles = engine
    url = metrics_url()
    router = Router(s.shards, s.dedicated_shards)
    sku = uid("MET")
    await repo.create_skus([SkuRow(sku, 3, 0, 0)], router)
    assert await pin_sku(repo, router, handles, sku) == DEDICATED
    shard = str(DEDICATED)
    # Earlier modules' shard processes may have left series for the same shard id: compare
    # against what the endpoint says before this test records anything.
    base = await asyncio.to_thread(scrape, url)
    name = "ray_matchday_reservations_total"
    ok0 = total(base, name, shard=shard, outcome="ok", code="ok")
    oos0 = total(base, name, shard=shard, outcome="refused", code="out_of_stock")
    refused0 = total(base, "ray_matchday_oversell_refused_total", shard=shard)
    sellouts0 = total(base, "ray_matchday_sellouts_total", shard=shard)

    client = connect_client(s, handles)
    client.router.pins[sku] = DEDICATED
    outs = [
        await client.submit(Reserve(uid("rq"), sku, qty, uid("cart"), uid("fan"), 300))
        for qty in (1, 2, 1)
    ]
    assert [o.error is None for o in outs] == [True, True, False]
    assert isinstance(outs[2].error, OutOfStock)

    deadline = time.monotonic() + EXPORT_WAIT_S
    while True:
        now = await asyncio.to_thread(scrape, url)
        seen = {
            "ok": total(now, name, shard=shard, outcome="ok", code="ok") - ok0,
            "out_of_stock": total(now, name, shard=shard, outcome="refused", code="out_of_stock")
            - oos0,
            "refused": total(now, "ray_matchday_oversell_refused_total", shard=shard) - refused0,
            "sellouts": total(now, "ray_matchday_sellouts_total", shard=shard) - sellouts0,
            "available": total(now, "ray_matchday_pinned_available", sku=sku, shard=shard),
            "pinned": sum(1 for n, lb, _ in now if n == "ray_matchday_pinned_available"
                          and lb.get("sku") == sku),
        }  # fmt: skip
        want = {"ok": 2, "out_of_stock": 1, "refused": 1, "sellouts": 1, "available": 0}
        if all(seen[k] == v for k, v in want.items()) and seen["pinned"]:
            break
        assert time.monotonic() < deadline, f"metrics not exported in time: {seen}"
        await asyncio.sleep(1.0)
    starts = [lb for n, lb, _ in now if n == "ray_matchday_shard_starts_total"]
    assert {lb["shard"] for lb in starts} >= {"0", "1", "2"}
    assert all(lb["SessionName"] and lb["NodeAddress"] for lb in starts)
