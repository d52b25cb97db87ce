"""Polls on the Serve stack over real HTTP: an operator creates a poll with an offer, a
shopper votes and gets a code, the results stream live, the poll closes, the vote is drained
into PostgreSQL by the polls replica, and the code pays for a discounted order."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pyotp
import pytest

from matchday.storage.db import make_pool
from matchday.storage.polls_repo import PollsRepository
from tests.e2e.conftest import Served
from tests.e2e.test_admin_http import admin_key
from tests.e2e.test_serve_http import new_product

pytestmark = pytest.mark.e2e


async def stored_tally(served: Served, pid: str) -> dict[str, int]:
    pool = make_pool(served.settings.database_url)
    await pool.open()
    try:
        return await PollsRepository(pool).tally(pid)
    finally:
        await pool.close()


async def test_a_poll_over_http_from_creation_to_a_discounted_order(served: Served) -> None:
    slug, sku = await new_product(served, stock=5)
    api_key, secret = await admin_key(served)
    async with (
        served.client("/api/admin") as admin,
        served.client("/api/polls") as polls,
        served.client("/api/shop") as shop,
        served.client("/api/orders") as orders,
    ):
        login = await admin.post(
            "/login", json={"api_key": api_key, "totp_code": pyotp.TOTP(secret).now()}
        )
        assert login.status_code == 200, login.text
        session = {"Authorization": f"Bearer {login.json()['session_token']}"}
        body = {
            "question": "Which kit for the final?",
            "placement": f"product:{slug}",
            "options": [{"label": "Home", "sku": sku}, {"label": "Away"}],
            "offer": {"percent_off": 10, "valid_s": 600},
        }
        r = await admin.post("/polls", json=body, headers={**session, "Idempotency-Key": "pl-1"})
        assert r.status_code == 201, r.text
        pid = r.json()["poll_id"]
        listed = await polls.get("/", params={"placement": f"product:{slug}"})
        assert [p["poll_id"] for p in listed.json()["polls"]] == [pid]

        seen: list[dict[str, Any]] = []

        async def follow() -> None:
            async with polls.stream("GET", f"/{pid}/events") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:]))

        task = asyncio.create_task(follow())
        auth = {"Authorization": f"Bearer {(await shop.post('/session')).json()['token']}"}
        async with asyncio.timeout(30):
            while not seen:
                await asyncio.sleep(0.05)
            vote = await polls.post(f"/{pid}/votes", json={"option_id": "o1"}, headers=auth)
            assert vote.status_code == 201, vote.text
            offer = vote.json()["offer"]
            assert offer["percent_off"] == 10 and offer["product_slug"] == slug
            while seen[-1]["total"] != 1:
                await asyncio.sleep(0.05)
            closed = await admin.post(f"/polls/{pid}/close", headers=session)
            assert closed.status_code == 200 and closed.json()["status"] == "closed"
            await task  # the stream ends once the poll is closed
            assert seen[-1]["status"] == "closed" and seen[-1]["results"] == {"o1": 1, "o2": 0}
            while await stored_tally(served, pid) != {"o1": 1}:  # the replica's drain
                await asyncio.sleep(0.2)
        late = await polls.post(f"/{pid}/votes", json={"option_id": "o2"}, headers=auth)
        assert late.status_code == 409

        cart = (await shop.post("/carts", headers=auth)).json()["cart_id"]
        await shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=auth)
        paid = await orders.post(
            "/", json={"cart_id": cart, "payment_token": "pm_card_visa",
                       "offer_code": offer["code"]}, headers=auth,
        )  # fmt: skip
        assert paid.status_code == 201, paid.text
        assert paid.json()["status"] == "paid" and paid.json()["discount_cents"] == 999
        assert offer["expires_at"] > time.time()
