"""The storefront when the shop is slow or shedding load: skeletons, a plain "busy" banner, and
retries that reuse the same Idempotency-Key, so a shed add lands exactly once."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.e2e.browser.conftest import admin_headers, goto, shop_product
from tests.e2e.browser.test_storefront import size, until
from tests.e2e.conftest import Served
from tests.e2e.test_serve_http import stock_of

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ITEMS = re.compile(r"/api/shop/carts/[^/]+/items$")
SHED = json.dumps({"code": "overloaded", "message": "the shop is at capacity: retry shortly"})


async def test_an_add_shed_with_503s_is_retried_under_one_key_and_lands_once(
    page: Any, served: Served
) -> None:
    slug, skus = await shop_product(served, {"M": 5})
    keys: list[str] = []

    async def shed_twice(route: Any) -> None:
        keys.append(route.request.headers.get("idempotency-key", ""))
        if len(keys) <= 2:  # what Serve's backpressure answers (serve_config.yaml)
            await route.fulfill(
                status=503, body=SHED, content_type="application/json",
                headers={"Retry-After": "1"},
            )  # fmt: skip
        else:
            await route.continue_()

    await page.route(ITEMS, shed_twice)
    await goto(page, f"/p/{slug}")
    await size(page, skus["M"]).click()
    async with page.expect_response(
        lambda r: r.request.method == "POST" and ITEMS.search(r.url) and r.status == 201
    ) as landed:
        await page.get_by_test_id("add-to-cart").click()
        await expect(page.get_by_test_id("busy")).to_be_visible()
        await expect(page.get_by_test_id("busy")).to_contain_text("busy")
    await landed.value
    assert len(keys) == 3 and keys[0] and len(set(keys)) == 1, keys  # one key, three tries

    async def reserved() -> int:
        return (await stock_of(served, skus["M"]))[1]

    await until(reserved, 1)  # held once, whatever the retries
    await asyncio.sleep(1.0)
    assert await reserved() == 1


async def test_a_slow_product_answer_shows_a_skeleton_then_the_product(
    page: Any, served: Served
) -> None:
    slug, _ = await shop_product(served, {"S": 2})
    release = asyncio.Event()

    async def slow(route: Any) -> None:
        await release.wait()
        await route.continue_()

    await page.route(re.compile(rf"/api/catalog/products/{slug}$"), slow)
    await page.goto(f"/p/{slug}")
    await expect(page.locator(".product.skeleton")).to_be_visible()
    await expect(page.get_by_test_id("product-title")).to_have_count(0)
    release.set()
    await expect(page.get_by_test_id("product-title")).to_contain_text(slug[-12:])
    await expect(page.locator(".product.skeleton")).to_have_count(0)


async def test_many_open_polls_at_checkout_never_hold_up_placing_the_order(
    page: Any, served: Served
) -> None:
    """Each poll shown streams its results over a connection of its own; a browser has six
    per host. Seven open checkout polls once left the order's POST queued in Chromium."""
    auth = await admin_headers(served)
    async with served.client("/api/admin") as admin:
        for n in range(7):
            body = {"question": f"Crowd poll {n}?", "placement": "checkout",
                    "options": [{"label": "Yes"}, {"label": "No"}]}  # fmt: skip
            r = await admin.post("/polls", json=body, headers=auth)
            assert r.status_code == 201, r.text
    slug, skus = await shop_product(served, {"M": 3})
    await goto(page, f"/p/{slug}")
    await size(page, skus["M"]).click()
    async with page.expect_response(
        lambda r: r.request.method == "POST" and ITEMS.search(r.url) and r.status == 201
    ):
        await page.get_by_test_id("add-to-cart").click()
    await goto(page, "/checkout")
    await expect(page.get_by_test_id("poll")).to_have_count(2)  # the newest two
    await expect(page.get_by_test_id("poll").first).to_contain_text("Crowd poll 6?")
    await page.get_by_test_id("place-order").click()
    await expect(page).to_have_url(re.compile(r"/orders/[^/]+$"))
    await expect(page.get_by_test_id("order-status")).to_have_text(re.compile(r"paid", re.I))
