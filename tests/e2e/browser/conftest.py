"""Debian's Chromium (Playwright) against the storefront on the e2e ``served`` Serve stack.

Under ``tests/e2e`` so the one session-scoped Serve deployment is shared (ADR 0015). Without
/usr/bin/chromium the tests skip with the reason, except under CI=true, where they fail:
``make test`` installs it first (scripts/ensure-chromium).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pyotp
import pytest

from cluster.browser import VIEWPORT, launch, missing_reason
from matchday import bootstrap
from matchday.catalog.models import CategoryIn, ProductIn, VariantIn
from matchday.inventory.routing import Router
from tests.conftest import uid
from tests.e2e.conftest import Served
from tests.e2e.test_admin_http import admin_key

# Long enough for a Serve replica's first answer on 2 busy cores; Playwright's default is 30 s
# for navigation and 5 s for expect(), too short for a cold replica.
TIMEOUT_MS = 30_000


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    reason = missing_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests under CI need Chromium: {reason}")
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await launch(pw)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def context(browser: Any, served: Served) -> AsyncIterator[Any]:
    """A fresh profile per test (storage, service worker, HTTP cache), on loopback only."""
    from playwright.async_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    ctx = await browser.new_context(
        base_url=served.base, viewport=VIEWPORT, service_workers="allow"
    )
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def page(context: Any) -> Any:
    return await context.new_page()


async def ready(page: Any) -> None:
    """The current page rendered its data (the storefront sets <body data-ready="1">)."""
    await page.wait_for_selector('body[data-ready="1"]', state="attached")


async def goto(page: Any, path: str) -> None:
    await page.goto(path)
    await ready(page)


async def shop_product(
    served: Served,
    sizes: dict[str, int],
    *,
    category: str | None = None,
    name: str | None = None,
    limit: int | None = None,
) -> tuple[str, dict[str, str]]:
    """A product in its own category (so filters find exactly ours); -> (slug, size -> sku)."""
    s = served.settings
    slug = uid("br").lower()
    category = category or uid("cat").lower()
    skus = {size: f"{slug.upper()}-{size}" for size in sizes}
    ctx = await bootstrap.open_shop(s)
    try:
        await ctx.catalog.put_category(CategoryIn(slug=category, name=f"Cat {category[-6:]}"))
        await ctx.catalog.create_product(
            ProductIn(
                slug=slug, name=name or f"Kit {slug[-12:]}", category=category,
                price_cents=4999, image_url=f"/static/img/{slug}.svg", per_customer_limit=limit,
                variants=[
                    VariantIn(sku=skus[size], size=size, initial_stock=units, position=i)
                    for i, (size, units) in enumerate(sizes.items())
                ],
            ),
            Router(s.shards, s.dedicated_shards),
        )  # fmt: skip
    finally:
        await ctx.close()
    return slug, skus


async def admin_headers(served: Served) -> dict[str, str]:
    """An admin session over HTTP (API key + TOTP), as an operator gets one."""
    api_key, secret = await admin_key(served)
    async with served.client("/api/admin") as admin:
        code = pyotp.TOTP(secret).at(time.time())
        r = await admin.post("/login", json={"api_key": api_key, "totp_code": code})
        assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['session_token']}"}


def seconds(mmss: str) -> int:
    """'14:58' -> 898."""
    minutes, secs = mmss.strip().split(":")
    return int(minutes) * 60 + int(secs)


async def click_add(page: Any, expect_status: int) -> None:
    """Click add-to-cart and wait for the shop API's answer to it."""
    async with page.expect_response(
        lambda r: r.request.method == "POST" and re.search(r"/api/shop/carts/[^/]+/items", r.url)
    ) as answer:
        await page.get_by_test_id("add-to-cart").click()
    response = await answer.value
    assert response.status == expect_status, await response.text()
