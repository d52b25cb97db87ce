"""Automatic drops through the ingress (ADR 0026): adds on one SKU past the threshold, over
HTTP through HAProxy to a Serve replica, open a queue by itself, audited as system:auto; the
next adds need a pass (403 in matchday's JSON shape); once the adds fall back, the queue
closes itself and the SKU sells without a pass again. The in-process tier covers the policy's
edges (tests/unit/test_waitingroom_auto.py, tests/integration/test_waitingroom_auto*.py);
this proves the Serve replica's wiring: the gate counting, the background evaluation, Redis
and PostgreSQL of a real stack."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import httpx
import psycopg
import pytest

from cluster.serving import load_config
from tests.e2e.run_stack import RunStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

HOT = "BALL-TRAINING-4"  # 500 units, no per-customer limit; no other test here uses it
COLD = "BALL-TRAINING-5"  # adds on it keep requests (and so evaluations) coming
THRESHOLD = 5.0  # adds/s over one 5 s bucket


def auto_shop(config: dict[str, Any]) -> dict[str, Any]:
    shop = copy.deepcopy(next(a for a in config["applications"] if a["name"] == "shop"))
    shop["name"] = "shop-auto"
    shop["route_prefix"] = "/api/shop-auto"
    shop["args"]["settings"] = {
        "rate_limit_per_s": 10_000.0,
        "rate_limit_burst": 10_000,
        "auto_drop": True,
        "auto_drop_adds_per_s": THRESHOLD,
        "auto_drop_window_s": 5.0,
        "auto_drop_hold_s": 10.0,
        "auto_drop_rate_per_s": 2.0,
    }
    return shop


def live_drop(stack: RunStack) -> tuple[str, str, str, str] | None:
    """(drop, state, origin, rate source) of the drop holding HOT, if any."""
    with psycopg.connect(stack.state()["database_url"]) as conn:
        row = conn.execute(
            "SELECT d.drop_id, d.state, d.origin, d.rate_source FROM drop_skus s"
            " JOIN drops d USING (drop_id) WHERE s.sku = %s",
            (HOT,),
        ).fetchone()
    return None if row is None else (row[0], row[1], row[2], row[3])


def audited(stack: RunStack, drop_id: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(stack.state()["database_url"]) as conn:
        rows = conn.execute(
            "SELECT action, client, outcome FROM admin_audit WHERE target = %s ORDER BY id",
            (drop_id,),
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


async def test_a_hot_sku_gets_a_queue_by_itself_through_the_ingress_and_loses_it(
    haproxy_run: RunStack,
) -> None:
    stack = haproxy_run
    stack.deploy_extra(auto_shop(load_config()))
    async with httpx.AsyncClient(base_url=f"{stack.base}/api/shop-auto", timeout=30.0) as shop:
        auth = {"Authorization": f"Bearer {(await shop.post('/session')).json()['token']}"}
        cart = (await shop.post("/carts", headers=auth)).json()["cart_id"]

        async def add(sku: str) -> httpx.Response:
            return await shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=auth)

        # ~15 adds/s on HOT, three times the threshold, until the queue is there.
        refused: httpx.Response | None = None
        deadline = time.monotonic() + 60
        while refused is None and time.monotonic() < deadline:
            answers = await asyncio.gather(*(add(HOT) for _ in range(3)))
            assert {r.status_code for r in answers} <= {201, 403}, [r.text for r in answers]
            refused = next((r for r in answers if r.status_code == 403), None)
            await asyncio.sleep(0.2)
        assert refused is not None, "no queue opened by itself within 60 s"
        assert refused.headers["content-type"].startswith("application/json")
        assert refused.json()["code"] == "pass_required"

        found = live_drop(stack)
        assert found is not None
        drop_id, state, origin, source = found
        assert (state, origin, source) == ("open", "auto", "setting")
        assert audited(stack, drop_id) == [("drop.create", "system:auto", "ok")]
        # The shop tells a fan where the queue is (the storefront's redirect).
        r = await shop.get("/drops", params={"sku": HOT})
        assert r.status_code == 200 and r.json()["drop_id"] == drop_id, r.text

        # The crowd goes; a trickle on another SKU keeps the replica evaluating. After the
        # hold-down (10 s, two calm buckets) with nobody waiting, the queue closes.
        deadline = time.monotonic() + 90
        while live_drop(stack) is not None and time.monotonic() < deadline:
            assert (await add(COLD)).status_code == 201
            await asyncio.sleep(1.0)
        assert live_drop(stack) is None, "the automatic drop did not close within 90 s"
        assert audited(stack, drop_id) == [
            ("drop.create", "system:auto", "ok"),
            ("drop.close", "system:auto", "ok"),
        ]
        # Every replica forgets the SKU within its 2 s map refresh: it sells without a pass.
        await asyncio.sleep(2.5)
        r = await add(HOT)
        assert r.status_code == 201, r.text
