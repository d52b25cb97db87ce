"""A fan in Debian's Chromium goes through a drop's waiting room (ADR 0026): the add is
refused without a pass, the queue page shows the place moving (live, over server-sent
events), the fan is admitted, comes back to the product with a pass, buys and pays."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from playwright.async_api import expect

from matchday.waitingroom.tokens import solve
from tests.e2e.browser.conftest import admin_headers, click_add, goto, ready, shop_product
from tests.e2e.conftest import Served
from tests.e2e.test_serve_http import stock_of

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


async def open_drop(served: Served, sku: str, rate_per_s: float) -> str:
    headers = await admin_headers(served)
    async with served.client("/api/admin") as admin:
        body = {"name": "Final whistle drop", "skus": [sku], "rate_per_s": rate_per_s,
                "pow_bits": 4}  # fmt: skip
        r = await admin.post("/drops", json=body, headers=headers)
        assert r.status_code == 201, r.text
        drop_id = str(r.json()["drop_id"])
        r = await admin.post(f"/drops/{drop_id}/open", headers=headers)
        assert r.json()["state"] == "open", r.text
    return drop_id


async def fans_ahead(served: Served, drop_id: str, n: int) -> None:
    """n fans who joined before ours (over HTTP, with the proof of work)."""
    async with served.client("/api/shop") as shop:
        for _ in range(n):
            token = (await shop.post("/session")).json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            c = (await shop.post(f"/drops/{drop_id}/challenge", headers=auth)).json()
            body = {"challenge": c["challenge"], "nonce": solve(c["challenge"], c["bits"])}
            r = await shop.post(f"/drops/{drop_id}/tickets", json=body, headers=auth)
            assert r.status_code == 201, r.text


async def test_a_fan_waits_watches_the_place_move_is_admitted_and_buys(
    page: Any, served: Served
) -> None:
    # Four units: the three fans ahead are admitted too, and until they buy or their passes
    # lapse each keeps a unit out of the headroom (ADR 0026).
    slug, skus = await shop_product(served, {"M": 4})
    sku = skus["M"]
    drop_id = await open_drop(served, sku, rate_per_s=0.5)
    await fans_ahead(served, drop_id, 3)
    await asyncio.sleep(2.5)  # every shop replica binds the drop's SKUs within 2 s

    await goto(page, f"/p/{slug}")
    await page.locator(f'[data-testid="size-option"][data-sku="{sku}"]').click()
    await click_add(page, expect_status=403)  # pass_required: off to the queue
    await expect(page).to_have_url(re.compile(rf"/queue/{drop_id}\?next="))

    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "/queue/" in page.url:
        try:
            text = await page.get_by_test_id("queue-position").text_content(timeout=500)
        except Exception:  # the page moved on between the check and the read
            break
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        await asyncio.sleep(0.1)
    places = [int(m.group(1)) for t in seen if (m := re.search(r"(\d+)$", t))]
    assert len(places) >= 2 and places == sorted(places, reverse=True), seen

    await expect(page).to_have_url(re.compile(rf"/p/{slug}$"))  # admitted, with the pass
    await ready(page)
    await page.locator(f'[data-testid="size-option"][data-sku="{sku}"]').click()
    await click_add(page, expect_status=201)
    await goto(page, "/checkout")
    await page.get_by_test_id("payment-token").select_option("pm_card_visa")
    await page.get_by_test_id("place-order").click()
    await expect(page).to_have_url(re.compile(r"/orders/[^/]+$"))
    await expect(page.get_by_test_id("order-status")).to_have_text(re.compile(r"paid", re.I))
    assert await stock_of(served, sku) == (4, 0, 1)
