"""The order page tells a shopper why an order ended when it is not a plain decline (issue
13, item 7): here a 3-D Secure payment never confirmed by its deadline, ended by the payments
worker actor on the Serve stack, and heard live on the page's status stream."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import ray
from playwright.async_api import expect

from tests.e2e.browser.conftest import goto, ready, shop_product
from tests.e2e.browser.test_storefront import add_to_cart, until
from tests.e2e.conftest import Served
from tests.e2e.test_serve_http import stock_of

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
def worker(served: Served) -> Iterator[Any]:
    from actors.payments_worker import start_payments_worker, stop_payments_worker

    handle = start_payments_worker(served.settings)
    deadline = time.monotonic() + 60
    while ray.get(handle.stats.remote())["running"] != 1:
        assert time.monotonic() < deadline, "the payments worker never started"
        time.sleep(0.2)
    try:
        yield handle
    finally:
        stop_payments_worker(served.settings)


async def test_an_order_not_confirmed_by_its_deadline_says_why_on_its_page(
    page: Any, served: Served, worker: Any
) -> None:
    slug, skus = await shop_product(served, {"M": 2})
    await add_to_cart(page, slug, skus["M"])
    await goto(page, "/checkout")
    await page.get_by_test_id("payment-token").select_option("pm_card_authenticationRequired")
    await page.get_by_test_id("place-order").click()
    await expect(page).to_have_url(re.compile(r"/orders/[^/]+$"))
    await ready(page)
    await expect(page.get_by_test_id("order-status")).to_have_text("requires_action")
    order_id = page.url.rsplit("/", 1)[1]
    assert await stock_of(served, skus["M"]) == (2, 1, 0)
    # The shopper never confirms. Time passes to the order's deadline (moved, not waited
    # for), and the worker, due to look then, ends it; the open page hears it live.
    with psycopg.connect(served.settings.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE orders SET pay_by = now() - interval '1 s' WHERE order_id = %s", (order_id,)
        )
        conn.execute("UPDATE payment_queue SET next_at = now() WHERE order_id = %s", (order_id,))
    await expect(page.get_by_test_id("order-status")).to_have_text("payment_failed", timeout=60_000)
    say = page.get_by_test_id("order-say")
    await expect(say).to_contain_text(re.compile(r"not confirmed within \d+ minutes", re.I))
    await expect(say).to_contain_text("Nothing was charged")
    await expect(page.get_by_test_id("retry-order")).to_be_visible()
    await until(lambda: stock_of(served, skus["M"]), (2, 0, 0))  # back on sale
    # Loaded afresh, the page says the same (from the order API, not the stream).
    await goto(page, f"/orders/{order_id}")
    await expect(page.get_by_test_id("order-say")).to_contain_text("Nothing was charged")
