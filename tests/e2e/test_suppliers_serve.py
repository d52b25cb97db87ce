"""The supplier push app deployed on Serve from serve_config.yaml: a signed level reaches
the engine through the ingress; a replayed or unsigned push is a 4xx in the error shape."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from matchday.storage.db import make_pool
from matchday.storage.suppliers_repo import SuppliersRepository
from matchday.suppliers.admin import MappingIn, MappingsIn, SupplierAdmin, SupplierIn
from matchday.suppliers.signing import SecretSeal, signed_headers
from tests.conftest import uid
from tests.e2e.conftest import Served
from tests.e2e.test_serve_http import new_product, stock_of

pytestmark = pytest.mark.e2e


async def test_a_signed_push_through_the_ingress_sets_stock_once(served: Served) -> None:
    _, sku = await new_product(served, stock=9)
    sid = uid("e2e").lower()
    pool = make_pool(served.settings.database_url)
    await pool.open()
    try:
        seal = SecretSeal(served.settings.secret_key.get_secret_value())
        admin = SupplierAdmin(SuppliersRepository(pool), seal)
        secret = (await admin.create(SupplierIn(supplier_id=sid, name="E2E"))).secret
        await admin.map(sid, MappingsIn(mappings=[MappingIn(supplier_sku="S-1", sku=sku)]))
    finally:
        await pool.close()
    body = json.dumps({"message_id": "e2e-1", "lines": [{"sku": "S-1", "level": 4}]}).encode()
    headers = {**signed_headers(secret, int(time.time()), body), "Content-Type": "application/json"}
    async with served.client("/api/suppliers") as http:
        r = await http.post(f"/{sid}/stock", content=body, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["lines"][0]["status"] == "applied"
        again = await http.post(f"/{sid}/stock", content=body, headers=headers)
        assert again.json() == r.json() and again.headers["Idempotent-Replayed"] == "true"
        unsigned = await http.post(
            f"/{sid}/stock", content=body, headers={"Content-Type": "application/json"}
        )
        assert unsigned.status_code == 401
        assert set(unsigned.json()) == {"code", "message", "retryable"}
    assert await stock_of(served, sku) == (4, 0, 0)


async def test_the_supplier_worker_actor_pulls_a_feed_and_applies_it_on_ray(
    served: Served,
) -> None:
    from actors.supplier_worker import start_supplier_worker, stop_supplier_worker
    from tests.integration.supplier_server import supplier_server

    _, sku = await new_product(served, stock=9)
    sid = uid("pull").lower()
    with supplier_server() as (url, feed):
        feed.content_type, feed.body = "text/csv", b"sku,level\nS-1,2\n"
        pool = make_pool(served.settings.database_url)
        await pool.open()
        try:
            seal = SecretSeal(served.settings.secret_key.get_secret_value())
            admin = SupplierAdmin(SuppliersRepository(pool), seal)
            spec = SupplierIn(supplier_id=sid, name="Pull", feed_url=url, feed_format="csv",
                              pull_every_s=3600)  # fmt: skip
            await admin.create(spec)
            await admin.map(sid, MappingsIn(mappings=[MappingIn(supplier_sku="S-1", sku=sku)]))
        finally:
            await pool.close()
        worker = start_supplier_worker(served.settings)
        try:
            async with asyncio.timeout(60):
                while await stock_of(served, sku) != (2, 0, 0):
                    await asyncio.sleep(0.2)
                # The level lands before the worker counts its pull: wait for the count too.
                while (await worker.stats.remote())["pulls"] < 1:
                    await asyncio.sleep(0.2)
            stats = await worker.stats.remote()
            assert stats["running"] == 1 and stats["pulls"] >= 1
        finally:
            stop_supplier_worker(served.settings)
    assert len(feed.requests) == 1  # due again in an hour
