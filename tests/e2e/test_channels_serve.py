"""The channel app deployed on Serve from serve_config.yaml: a marketplace reserves, retries
and commits through the ingress within its allocation, against the shard actors; bad input
and a missing key are 4xx in the error shape (ADR 0028)."""

from __future__ import annotations

import pytest

from actors.client import connect_client
from matchday.channels.admin import ChannelAdmin, ChannelIn
from matchday.storage.channels_repo import ChannelsRepository
from matchday.storage.db import make_pool
from tests.conftest import uid
from tests.e2e.conftest import Served
from tests.e2e.test_serve_http import new_product, stock_of

pytestmark = pytest.mark.e2e


async def test_a_channel_sells_through_the_ingress_within_its_allocation(served: Served) -> None:
    _, sku = await new_product(served, stock=6)
    cid = uid("mkt").lower()
    pool = make_pool(served.settings.database_url)
    await pool.open()
    try:
        engine = connect_client(served.settings)
        admin = ChannelAdmin(ChannelsRepository(pool), engine)
        key = (await admin.create(ChannelIn(channel_id=cid, name="E2E Market"))).key
        await engine.allocate(uid("al"), sku, cid, max_units=2)
    finally:
        await pool.close()
    auth = {"Authorization": f"Bearer {key}"}
    body = {"request_id": "o-1-l-1", "sku": sku, "qty": 2, "order_id": "o-1",
            "customer_id": "buyer-1"}  # fmt: skip
    async with served.client("/api/channels") as http:
        first = await http.post("/reserve", json=body, headers=auth)
        assert first.status_code == 201, first.text
        again = await http.post("/reserve", json=body, headers=auth)
        assert again.json() == first.json()
        over = await http.post("/reserve", json={**body, "request_id": "o-2-l-1"}, headers=auth)
        assert over.status_code == 409 and over.json()["code"] == "allocation_exceeded"
        bad = await http.post("/reserve", json={**body, "qty": -1}, headers=auth)
        assert bad.status_code == 422 and set(bad.json()) >= {"code", "message", "retryable"}
        anonymous = await http.post("/reserve", json=body)
        assert anonymous.status_code == 401
        paid = {"request_id": "o-1-pay", "reservation_id": first.json()["reservation_id"],
                "order_id": "o-1"}  # fmt: skip
        done = await http.post("/commit", json=paid, headers=auth)
        assert done.status_code == 200 and done.json()["status"] == "committed"
        view = (await http.get("/stock", params={"sku": sku}, headers=auth)).json()["stock"][0]
        assert (view["sold"], view["available_to_channel"]) == (2, 0)
    assert await stock_of(served, sku) == (6, 0, 2)
