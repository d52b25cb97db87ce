"""Automatic drops and ``auto`` rates over HTTP, in-process through the apps (real
PostgreSQL, Redis and shard core; the stack of test_waitingroom_http.py): adds on a SKU past
the threshold open a queue by itself, audited as system:auto; a fan queues, gets a pass and
buys; the queue closes itself when the adds fall back, and the SKU sells without a pass again.
'auto' rates come from the stack's capacity profile, and are refused (422) without one."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from pathlib import Path

import pytest

from matchday.settings import Settings
from matchday.waitingroom.rates import RateSource
from matchday.web.queue_api import WaitingRoomParts, waiting_room
from tests.integration.test_admin_api import open_admin
from tests.integration.test_waitingroom_http import add, error, until_admitted
from tests.unit.capacity_cases import profile

pytestmark = pytest.mark.integration


async def next_bucket(parts: WaitingRoomParts) -> None:
    """Sleep into the next bucket."""
    assert parts.auto is not None
    size = parts.auto.cfg.bucket_s
    await asyncio.sleep(size - time.time() % size + 0.05)


async def evaluate(parts: WaitingRoomParts) -> None:
    assert parts.auto is not None
    await parts.auto.run_once()
    parts.gate._next = 0.0  # every replica binds the change within 2 s; this one at once
    parts.room._drops.clear()


async def test_a_hot_sku_gets_a_queue_by_itself_and_loses_it_when_adds_fall_back(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "profile.json"
    path.write_text(profile().to_json())
    async with open_admin(
        settings, auto_drop=True, auto_drop_adds_per_s=5.0, auto_drop_window_s=1.0,
        capacity_profile=str(path),
    ) as admin:  # fmt: skip
        parts = waiting_room(admin.stack.ctx)
        assert parts.auto is not None and parts.gate.on_refresh == parts.auto.tick
        # The test evaluates at chosen moments: no background evaluation in between (the
        # unit tests cover the ticks).
        parts.auto._next = math.inf
        (sku,) = await admin.stack.product(stock=20)
        crowd = await admin.stack.session()
        cart = await admin.stack.cart(crowd)
        await next_bucket(parts)
        for _ in range(12):  # 12 adds within a second: past 5/s (the per-customer limit
            await add(admin, crowd, cart, sku)  # refuses most; they still count)
        await next_bucket(parts)
        await evaluate(parts)
        found = await admin.stack.shop.get("/drops", params={"sku": sku})
        assert found.status_code == 200, found.text
        drop_id = found.json()["drop_id"]
        error(await add(admin, crowd, cart, sku), 403, "pass_required")
        ops = await admin.login()
        stats = (await admin.http.get(f"/drops/{drop_id}", headers=ops)).json()
        assert (stats["state"], stats["origin"], stats["skus"]) == ("open", "auto", [sku])
        assert stats["rate_per_s"] == 350.0 and stats["rate_source"].startswith("auto: profile")
        created = [e for e in await admin.repo.recent_audit(200) if e.target == drop_id]
        assert [(e.action, e.client, e.outcome) for e in created] == [
            ("drop.create", "system:auto", "ok")
        ]
        assert created[0].params["sku"] == sku and created[0].params["adds_per_s"] >= 5.0

        # A fan queues (no proof of work: behind the genuine, still in line), is admitted
        # at the profile's rate, and buys with the pass.
        fan = await admin.stack.session()
        r = await admin.stack.shop.post(f"/drops/{drop_id}/tickets", json={}, headers=fan)
        assert r.status_code == 201, r.text
        ticket = r.json()["ticket"]
        await until_admitted(admin.stack.shop, drop_id, ticket)
        r = await admin.stack.shop.post(f"/drops/{drop_id}/pass", json={"ticket": ticket},
                                        headers=fan)  # fmt: skip
        pass_ = r.json()["pass"]
        mine = await admin.stack.cart(fan)
        assert (await add(admin, fan, mine, sku, pass_)).status_code == 201

        # Calm, nobody waiting, past the hold-down (shortened here): it closes by itself,
        # and the fan admitted to it checks out without needing its pass any more.
        parts.auto.cfg = dataclasses.replace(parts.auto.cfg, hold_s=1.0)
        await next_bucket(parts)
        await next_bucket(parts)  # a whole bucket older than the hold-down, surely
        await evaluate(parts)
        stats = (await admin.http.get(f"/drops/{drop_id}", headers=ops)).json()
        assert stats["state"] == "closed"
        closed = [e for e in await admin.repo.recent_audit(200) if e.target == drop_id]
        assert ("drop.close", "system:auto") in {(e.action, e.client) for e in closed}
        error(await admin.stack.shop.get("/drops", params={"sku": sku}), 404, "not_found")
        order = {"cart_id": mine, "payment_token": "pm_card_visa"}
        r = await admin.stack.orders.post("/", json=order, headers=fan)
        assert (r.status_code, r.json()["status"]) == (201, "paid"), r.text
        other = await admin.stack.session()
        assert (await add(admin, other, await admin.stack.cart(other), sku)).status_code == 201


async def test_rate_auto_over_the_admin_api_and_its_refusals(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "profile.json"
    path.write_text(profile().to_json())
    async with open_admin(settings, capacity_profile=str(path)) as admin:
        parts = waiting_room(admin.stack.ctx)
        assert parts.auto is None  # automatic drops are off by default
        ops = await admin.login()
        (sku,) = await admin.stack.product(stock=5)
        body = {"name": "Final", "skus": [sku], "pow_bits": 0, "rate_per_s": "auto"}
        r = await admin.http.post("/drops", json=body, headers={**ops, "Idempotency-Key": "a1"})
        assert r.status_code == 201, r.text
        drop = r.json()
        assert drop["rate_per_s"] == 350.0 and drop["origin"] == "operator"
        assert "1,000 reserves/s x 70% / 2 shard calls per fan" in drop["rate_source"]
        rate = f"/drops/{drop['drop_id']}/rate"
        r = await admin.http.put(rate, json={"rate_per_s": 4.0}, headers=ops)
        assert (r.json()["rate_per_s"], r.json()["rate_source"]) == (4.0, "operator")
        for bad in ("fast", 0, -1.0, None):
            error(await admin.http.put(rate, json={"rate_per_s": bad}, headers=ops),
                  422, "invalid_input")  # fmt: skip
        # A malformed profile, then none at all: refused, audited, the drop unchanged.
        path.write_text('{"schema": "matchday.capacity.profile", "version": 1}')
        refused = error(await admin.http.put(rate, json={"rate_per_s": "auto"}, headers=ops),
                        422, "invalid_input")  # fmt: skip
        assert "malformed" in refused["message"]
        parts.admin.rates = RateSource()
        r = await admin.http.post("/drops", json={**body, "skus": [sku + "X"]},
                                  headers={**ops, "Idempotency-Key": "a2"})  # fmt: skip
        assert "capacity profile" in error(r, 422, "invalid_input")["message"]
        r = await admin.http.get(f"/drops/{drop['drop_id']}", headers=ops)
        assert r.json()["rate_per_s"] == 4.0
        outcomes = [e.outcome for e in await admin.repo.recent_audit(200)
                    if e.action == "drop.rate" and e.target == drop["drop_id"]]  # fmt: skip
        assert "invalid_input" in outcomes and "ok" in outcomes
