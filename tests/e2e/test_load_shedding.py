"""Load shedding: past max_queued_requests, Serve answers 503 with Retry-After at once and
the engine sees nothing of the refused requests."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from cluster.serving import deploy, load_config
from tests.e2e.conftest import Served
from tests.e2e.test_serve_http import new_product, stock_of

pytestmark = pytest.mark.e2e


def tiny_shop(config: dict[str, Any]) -> dict[str, Any]:
    shop = copy.deepcopy(next(a for a in config["applications"] if a["name"] == "shop"))
    shop["name"] = "shop-tiny"
    shop["route_prefix"] = "/api/shop-tiny"
    shop["deployments"] = [
        {
            "name": "Shop",
            "max_ongoing_requests": 1,
            "max_queued_requests": 1,
            "backpressure_config": {"status_code": 503, "retry_after_s": 1},
            "autoscaling_config": {"min_replicas": 1, "max_replicas": 1},
        }
    ]
    return shop


async def test_a_surge_past_the_queue_bound_is_shed_with_503_and_retry_after(
    served: Served,
) -> None:
    port = int(served.base.rsplit(":", 1)[1])
    config = load_config(settings=served.settings.payload(), port=port)
    with_tiny = {**config, "applications": [*config["applications"], tiny_shop(config)]}
    deploy(with_tiny, say=lambda _: None)
    try:
        _, sku = await new_product(served, stock=1000)
        async with served.client("/api/shop-tiny") as shop:
            auth = {"Authorization": f"Bearer {(await shop.post('/session')).json()['token']}"}
            cart = (await shop.post("/carts", headers=auth)).json()["cart_id"]

            async def add() -> Any:
                return await shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=auth)

            answers = await asyncio.gather(*(add() for _ in range(60)))
        codes = [r.status_code for r in answers]
        assert set(codes) <= {201, 503}, codes
        assert codes.count(503) > 0, "nothing was shed"
        shed = next(r for r in answers if r.status_code == 503)
        assert int(shed.headers["Retry-After"]) >= 1
        # Only what was acknowledged holds stock: a shed request changed nothing.
        assert (await stock_of(served, sku)) == (1000, codes.count(201), 0)
    finally:
        deploy(config, say=lambda _: None)


async def test_a_client_over_its_rate_limit_over_http_gets_429_with_retry_after(
    served: Served,
) -> None:
    port = int(served.base.rsplit(":", 1)[1])
    config = load_config(settings=served.settings.payload(), port=port)
    limited = copy.deepcopy(next(a for a in config["applications"] if a["name"] == "shop"))
    limited["name"] = "shop-limited"
    limited["route_prefix"] = "/api/shop-limited"
    limited["args"]["settings"] = {
        **limited["args"]["settings"],
        "rate_limit_per_s": 0.5,
        "rate_limit_burst": 3,
    }
    deploy({**config, "applications": [*config["applications"], limited]}, say=lambda _: None)
    try:
        async with served.client("/api/shop-limited") as shop:
            auth = {"Authorization": f"Bearer {(await shop.post('/session')).json()['token']}"}
            codes = [(await shop.post("/carts", headers=auth)).status_code for _ in range(5)]
            assert codes[:3] == [201, 201, 201] and codes[-1] == 429, codes
            r = await shop.post("/carts", headers=auth)
            assert r.status_code == 429 and r.json()["code"] == "rate_limited"
            assert int(r.headers["Retry-After"]) >= 1
    finally:
        deploy(config, say=lambda _: None)
