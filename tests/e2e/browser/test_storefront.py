"""A shopper in Debian's Chromium: catalogue, product, cart countdown, checkout, sold out,
limits, offline browsing from the service worker. Outcomes are checked on the page and, where
the page could lie, in the engine's durable counters too."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.conftest import uid
from tests.e2e.browser.conftest import (
    admin_headers,
    click_add,
    goto,
    ready,
    seconds,
    shop_product,
)
from tests.e2e.conftest import Served
from tests.e2e.test_serve_http import stock_of

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SOLD_OUT = re.compile(r"sold out", re.I)
# Resolves once a service worker controls the page (evaluate: the storefront's CSP forbids the
# eval that wait_for_function's string predicates need).
SW_CONTROLS = """() => navigator.serviceWorker.controller ? true : new Promise((resolve) =>
  navigator.serviceWorker.addEventListener("controllerchange", () => resolve(true)))"""


def card(page: Any, slug: str) -> Any:
    return page.locator(f'[data-testid="product-card"][data-slug="{slug}"]')


def size(page: Any, sku: str) -> Any:
    return page.locator(f'[data-testid="size-option"][data-sku="{sku}"]')


async def add_to_cart(page: Any, slug: str, sku: str) -> None:
    await goto(page, f"/p/{slug}")
    await size(page, sku).click()
    await click_add(page, expect_status=201)


async def cart_holds(page: Any, sku: str) -> None:
    await goto(page, "/cart")
    await expect(page.locator(f'[data-testid="cart-line"][data-sku="{sku}"]')).to_be_visible()


async def test_the_catalogue_lists_products_and_filters_them(page: Any, served: Served) -> None:
    category = uid("cat").lower()  # ours alone, so the filtered list is exactly ours
    slug_in, _ = await shop_product(served, {"M": 4}, category=category, name="Final shirt blue")
    slug_out, _ = await shop_product(served, {"M": 0}, category=category, name="Final shirt red")
    slug_other, _ = await shop_product(served, {"M": 2}, name="Scarf of another category")

    await goto(page, "/")
    await expect(page.get_by_test_id("product-card").first).to_be_visible()
    await page.get_by_test_id("filter-category").select_option(category)
    await expect(card(page, slug_in)).to_be_visible()
    await expect(card(page, slug_out)).to_be_visible()
    await expect(card(page, slug_other)).to_have_count(0)
    await expect(page.get_by_test_id("product-card")).to_have_count(2)

    await page.get_by_test_id("filter-instock").check()
    await expect(card(page, slug_out)).to_have_count(0)
    await expect(page.get_by_test_id("product-card")).to_have_count(1)

    await page.get_by_test_id("filter-instock").uncheck()
    await page.get_by_test_id("search").fill("red")
    await expect(card(page, slug_in)).to_have_count(0)
    await expect(card(page, slug_out)).to_be_visible()

    await card(page, slug_out).click()
    await expect(page).to_have_url(re.compile(f"/p/{slug_out}$"))
    await ready(page)
    await expect(page.get_by_test_id("product-title")).to_have_text("Final shirt red")


async def test_a_product_shows_availability_and_a_size_goes_into_the_cart_with_a_countdown(
    page: Any, served: Served
) -> None:
    slug, skus = await shop_product(served, {"S": 3, "M": 7})
    await goto(page, f"/p/{slug}")
    await expect(page.get_by_test_id("product-title")).to_have_text(re.compile(slug[-12:]))
    await expect(page.get_by_test_id("size-option")).to_have_count(2)
    await size(page, skus["M"]).click()
    await expect(page.get_by_test_id("availability")).to_contain_text("7")

    await click_add(page, expect_status=201)
    await expect(page.get_by_test_id("message")).not_to_have_text(SOLD_OUT)

    async def reserved() -> int:
        return (await stock_of(served, skus["M"]))[1]

    await until(lambda: reserved(), 1)  # the hold is in the engine, not only on the page

    await cart_holds(page, skus["M"])
    countdown = page.locator(f'[data-testid="cart-line"][data-sku="{skus["M"]}"]').get_by_test_id(
        "countdown"
    )
    await expect(countdown).to_have_text(re.compile(r"^\s*\d{1,2}:\d{2}\s*$"))
    first = seconds(await countdown.inner_text())
    assert 0 < first <= served.settings.default_ttl_s
    await asyncio.sleep(2.5)
    later = seconds(await countdown.inner_text())
    assert first - 4 <= later < first, (first, later)  # it counts down, at about 1/s

    await (
        page.locator(f'[data-testid="cart-line"][data-sku="{skus["M"]}"]')
        .get_by_test_id("remove-line")
        .click()
    )
    await expect(page.get_by_test_id("cart-empty")).to_be_visible()
    await until(lambda: reserved(), 0)  # removing the line released the hold


async def until(probe: Any, want: Any, timeout_s: float = 15.0) -> None:
    """Poll an async probe until it returns ``want`` (the engine commits in small batches)."""
    deadline = asyncio.get_event_loop().time() + timeout_s
    got = None
    while asyncio.get_event_loop().time() < deadline:
        got = await probe()
        if got == want:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"wanted {want!r}, last saw {got!r}")


async def test_checkout_with_a_test_card_shows_the_order_paid_live(
    page: Any, served: Served
) -> None:
    slug, skus = await shop_product(served, {"L": 2})
    await add_to_cart(page, slug, skus["L"])
    await cart_holds(page, skus["L"])
    await page.get_by_test_id("checkout").click()
    await expect(page).to_have_url(re.compile(r"/checkout$"))
    await ready(page)
    await page.get_by_test_id("payment-token").select_option("pm_card_visa")
    await page.get_by_test_id("place-order").click()

    await expect(page).to_have_url(re.compile(r"/orders/[^/]+$"))
    await expect(page.get_by_test_id("order-status")).to_have_text(re.compile(r"paid", re.I))
    await expect(page.get_by_test_id("order-total")).to_contain_text("49.99")
    assert await stock_of(served, skus["L"]) == (2, 0, 1)


async def pay_declined(page: Any, slug: str, sku: str) -> None:
    """Put ``sku`` in the cart and check out with a card the bank declines."""
    await add_to_cart(page, slug, sku)
    await goto(page, "/checkout")
    await page.get_by_test_id("payment-token").select_option("pm_card_chargeDeclined")
    await page.get_by_test_id("place-order").click()
    await expect(page).to_have_url(re.compile(r"/orders/[^/]+$"))
    await ready(page)


async def test_a_declined_card_says_so_plainly_and_sells_nothing(page: Any, served: Served) -> None:
    slug, skus = await shop_product(served, {"L": 2})
    await pay_declined(page, slug, skus["L"])

    # The order exists, failed, and the page says why in words (the payment method's label on
    # the checkout page also says "declined": only the order page counts).
    await expect(page.get_by_test_id("order-status")).to_have_text(re.compile(r"fail|declin", re.I))
    await expect(page.get_by_role("main")).to_contain_text(re.compile(r"declined", re.I))
    await until(lambda: stock_of(served, skus["L"]), (2, 0, 0))  # nothing sold, hold released

    # One click holds the same items again and goes back to checkout; another card pays.
    await page.get_by_test_id("retry-order").click()
    await expect(page).to_have_url(re.compile(r"/checkout$"))
    await ready(page)
    await expect(page.get_by_test_id("checkout-total")).to_contain_text(re.compile(r"\d"))
    assert await stock_of(served, skus["L"]) == (2, 1, 0)
    await page.get_by_test_id("payment-token").select_option("pm_card_visa")
    await page.get_by_test_id("place-order").click()
    await expect(page).to_have_url(re.compile(r"/orders/[^/]+$"))
    await ready(page)
    await expect(page.get_by_test_id("order-status")).to_have_text(re.compile(r"paid", re.I))
    await expect(page.get_by_test_id("retry-order")).to_be_hidden()
    assert await stock_of(served, skus["L"]) == (2, 0, 1)


async def test_retrying_a_declined_order_says_which_items_are_gone(
    page: Any, served: Served
) -> None:
    slug, skus = await shop_product(served, {"L": 1})
    await pay_declined(page, slug, skus["L"])
    await expect(page.get_by_test_id("order-status")).to_have_text(re.compile(r"fail", re.I))
    await until(lambda: stock_of(served, skus["L"]), (1, 0, 0))
    # Meanwhile another fan takes the last one.
    async with served.client("/api/shop") as shop:
        auth = {"Authorization": f"Bearer {(await shop.post('/session')).json()['token']}"}
        cart = (await shop.post("/carts", headers=auth)).json()["cart_id"]
        r = await shop.post(f"/carts/{cart}/items", json={"sku": skus["L"], "qty": 1}, headers=auth)
        assert r.status_code == 201, r.text
    await page.get_by_test_id("retry-order").click()
    await expect(page.get_by_test_id("retry-message")).to_contain_text(
        re.compile(r"sold out", re.I)
    )
    await expect(page).to_have_url(re.compile(r"/orders/[^/]+$"))


async def test_a_sold_out_size_is_plain_and_cannot_be_added(page: Any, served: Served) -> None:
    slug, skus = await shop_product(served, {"S": 1, "M": 3})
    auth = await admin_headers(served)
    async with served.client("/api/admin") as admin:
        r = await admin.put(
            f"/stock/{skus['S']}", json={"units": 0}, headers={**auth, "Idempotency-Key": slug}
        )
        assert r.status_code == 200, r.text
        assert r.json()["available"] == 0

    await goto(page, f"/p/{slug}")
    await expect(size(page, skus["S"])).to_be_disabled()
    await expect(size(page, skus["M"])).to_be_enabled()
    await size(page, skus["M"]).click()
    await expect(page.get_by_test_id("availability")).to_contain_text("3")
    await expect(page.get_by_test_id("availability")).not_to_contain_text(SOLD_OUT)

    # The whole product sold out: the page says so and nothing can be put in the cart.
    async with served.client("/api/admin") as admin:
        r = await admin.put(
            f"/stock/{skus['M']}", json={"units": 0},
            headers={**auth, "Idempotency-Key": slug + "-m"},
        )  # fmt: skip
        assert r.status_code == 200, r.text
    await goto(page, f"/p/{slug}")
    await expect(page.get_by_test_id("availability")).to_have_text(SOLD_OUT)
    await expect(size(page, skus["M"])).to_be_disabled()
    add = page.get_by_test_id("add-to-cart")
    if await add.is_enabled():
        await click_add(page, expect_status=409)
        await expect(page.get_by_test_id("message")).to_contain_text(SOLD_OUT)
    assert await stock_of(served, skus["M"]) == (0, 0, 0)
    await goto(page, "/cart")
    await expect(page.get_by_test_id("cart-empty")).to_be_visible()


async def test_a_size_that_sells_out_while_the_page_is_open_is_refused_plainly(
    page: Any, served: Served
) -> None:
    slug, skus = await shop_product(served, {"M": 1})
    await goto(page, f"/p/{slug}")
    await size(page, skus["M"]).click()
    # Another shopper takes the last unit over HTTP after this page rendered it available.
    async with served.client("/api/shop") as shop:
        auth = {"Authorization": f"Bearer {(await shop.post('/session')).json()['token']}"}
        cart = (await shop.post("/carts", headers=auth)).json()["cart_id"]
        r = await shop.post(f"/carts/{cart}/items", json={"sku": skus["M"]}, headers=auth)
        assert r.status_code == 201, r.text
    add = page.get_by_test_id("add-to-cart")
    if await add.is_enabled():  # unless live availability disabled it first
        await click_add(page, expect_status=409)
        await expect(page.get_by_test_id("message")).to_contain_text(SOLD_OUT)
    else:
        await expect(page.get_by_test_id("availability")).to_have_text(SOLD_OUT)
    assert (await stock_of(served, skus["M"]))[1] == 1  # only the other shopper's hold


async def test_the_per_customer_limit_is_shown_plainly(page: Any, served: Served) -> None:
    slug, skus = await shop_product(served, {"M": 10}, limit=1)
    await add_to_cart(page, slug, skus["M"])
    await click_add(page, expect_status=409)
    await expect(page.get_by_test_id("message")).to_contain_text(re.compile(r"limit", re.I))
    assert (await stock_of(served, skus["M"]))[1] == 1


async def test_offline_the_cached_catalogue_and_product_still_render(
    context: Any, page: Any, served: Served
) -> None:
    slug, _ = await shop_product(served, {"M": 5}, name="Offline away kit")
    await goto(page, "/")
    # The first visit installs the service worker; once it controls the page, what the shopper
    # opens next is kept as it is fetched.
    await page.evaluate(SW_CONTROLS)
    await goto(page, f"/p/{slug}")
    await expect(page.get_by_test_id("product-title")).to_have_text("Offline away kit")

    await context.set_offline(True)
    try:
        await goto(page, "/")
        await expect(page.get_by_test_id("offline")).to_be_visible()
        await expect(page.get_by_test_id("product-card").first).to_be_visible()
        await goto(page, f"/p/{slug}")
        await expect(page.get_by_test_id("product-title")).to_have_text("Offline away kit")
        await expect(page.get_by_test_id("offline")).to_be_visible()
        # Truly offline: what the worker does not keep (live availability) cannot be fetched.
        reached = await page.evaluate(
            "() => fetch('/api/catalog/availability?sku=X-M').then(() => true, () => false)"
        )
        assert reached is False
    finally:
        await context.set_offline(False)
    await goto(page, f"/p/{slug}")
    await expect(page.get_by_test_id("offline")).to_be_hidden()
