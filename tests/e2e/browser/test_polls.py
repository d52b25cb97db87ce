"""A live poll on a product page in Chromium: an admin opens it over HTTP, the shopper votes,
results stream in as others vote, and the voter's offer code discounts the checkout."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.e2e.browser.conftest import admin_headers, click_add, goto, ready, shop_product
from tests.e2e.conftest import Served

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


async def open_poll(served: Served, slug: str, skus: dict[str, str]) -> dict[str, Any]:
    auth = await admin_headers(served)
    body = {
        "question": "Which kit for the final?",
        "placement": f"product:{slug}",
        "options": [{"label": f"Size {size}", "sku": sku} for size, sku in skus.items()],
        "offer": {"percent_off": 10, "product_slug": slug, "valid_s": 600},
    }
    async with served.client("/api/admin") as admin:
        r = await admin.post("/polls", json=body, headers={**auth, "Idempotency-Key": slug})
        assert r.status_code == 201, r.text
    poll: dict[str, Any] = r.json()
    assert poll["status"] == "open" and poll["has_offer"] is True
    return poll


async def vote_over_http(served: Served, poll_id: str, option_id: str) -> dict[str, Any]:
    async with served.client("/api/shop") as shop, served.client("/api/polls") as polls:
        auth = {"Authorization": f"Bearer {(await shop.post('/session')).json()['token']}"}
        r = await polls.post(f"/{poll_id}/votes", json={"option_id": option_id}, headers=auth)
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body


async def test_a_shopper_votes_sees_results_live_and_uses_the_offer(
    page: Any, served: Served
) -> None:
    slug, skus = await shop_product(served, {"M": 5, "L": 5})
    poll = await open_poll(served, slug, skus)
    first, second = (o["option_id"] for o in poll["options"])

    votes: list[str] = []  # the browser's own bearer token, seen on its vote request
    page.on(
        "request",
        lambda req: (
            votes.append(req.headers.get("authorization", ""))
            if req.method == "POST" and req.url.endswith("/votes")
            else None
        ),
    )
    await goto(page, f"/p/{slug}")
    widget = page.locator(f'[data-testid="poll"][data-poll-id="{poll["poll_id"]}"]')
    await expect(widget).to_be_visible()
    await expect(widget).to_contain_text("Which kit for the final?")
    await widget.locator(f'[data-testid="poll-option"][data-option-id="{first}"]').click()
    results = widget.get_by_test_id("poll-results")
    await expect(results).to_contain_text(re.compile(r"Size M\D*1\b"))
    await expect(results).to_contain_text(re.compile(r"Size L\D*0\b"))
    offer = widget.get_by_test_id("poll-offer")
    await expect(offer).to_be_visible()

    # The vote is counted once on the server, as this shopper's, with their own code ...
    assert votes and votes[0].startswith("Bearer "), votes
    async with served.client("/api/polls") as polls:
        mine = (await polls.get(f"/{poll['poll_id']}", headers={"Authorization": votes[0]})).json()
    assert mine["total"] == 1 and mine["results"][first] == 1, mine
    assert mine["my_vote"] == first and mine["offer"], mine
    code = mine["offer"]["code"]
    await expect(offer).to_contain_text(code)
    # ... and another shopper's vote reaches this page without a reload (event stream).
    other = await vote_over_http(served, poll["poll_id"], second)
    assert other["total"] == 2
    await expect(results).to_contain_text(re.compile(r"Size L\D*1\b"))

    # The code shown to the voter discounts this product at checkout.
    await page.locator(f'[data-testid="size-option"][data-sku="{skus["M"]}"]').click()
    await click_add(page, expect_status=201)
    await goto(page, "/checkout")
    # The page asks the server what the order would charge: a refused code says why, the
    # voter's code shows its discount and what is left to pay, before anything is placed.
    message = page.get_by_test_id("message")
    discount = page.get_by_test_id("checkout-discount")
    await page.get_by_test_id("offer-code").fill("not-a-code")
    await expect(message).to_contain_text("cannot be used")
    await expect(discount).to_be_hidden()
    await page.get_by_test_id("offer-code").fill(code)
    await expect(discount).to_be_visible()
    await expect(discount).to_contain_text("Poll offer")
    await expect(discount).to_contain_text(re.compile(r"to pay\D*(44.99|45.00)"))
    await expect(message).to_have_text("")
    await page.get_by_test_id("payment-token").select_option("pm_card_visa")
    await page.get_by_test_id("place-order").click()
    await expect(page).to_have_url(re.compile(r"/orders/[^/]+$"))
    await ready(page)
    await expect(page.get_by_test_id("order-status")).to_have_text(re.compile(r"paid", re.I))
    # 49.99 less 10 %, whichever way the half cent is rounded.
    await expect(page.get_by_test_id("order-total")).to_contain_text(re.compile(r"44.99|45.00"))


async def test_a_vote_at_checkout_fills_in_its_offer_and_the_discount_shows_before_paying(
    page: Any, served: Served
) -> None:
    slug, skus = await shop_product(served, {"S": 5})
    auth = await admin_headers(served)
    body = {
        "question": "Will you wear it at the final?",
        "placement": "checkout",
        "options": [{"label": "Yes", "sku": skus["S"]}, {"label": "No"}],
        "offer": {"percent_off": 20, "product_slug": slug, "valid_s": 600},
    }
    async with served.client("/api/admin") as admin:
        r = await admin.post("/polls", json=body, headers={**auth, "Idempotency-Key": slug})
        assert r.status_code == 201, r.text
        poll = r.json()
        try:
            await goto(page, f"/p/{slug}")
            await page.locator(f'[data-testid="size-option"][data-sku="{skus["S"]}"]').click()
            await click_add(page, expect_status=201)
            await goto(page, "/checkout")
            offer = page.get_by_test_id("offer-code")
            await expect(offer).to_have_value("")
            widget = page.locator(f'[data-testid="poll"][data-poll-id="{poll["poll_id"]}"]')
            await widget.get_by_role("button", name="Yes").click()
            await expect(widget.get_by_test_id("poll-offer")).to_be_visible()
            await expect(offer).not_to_have_value("")
            code = await offer.input_value()  # the voter's own code, as the poll shows it
            assert code in await widget.get_by_test_id("poll-offer").inner_text()
            discount = page.get_by_test_id("checkout-discount")
            await expect(discount).to_contain_text("Poll offer")
            # 49.99 less 20 %, whichever way the cent is rounded.
            await expect(discount).to_contain_text(re.compile(r"to pay\D*(39.99|40.00)"))
        finally:
            r = await admin.post(
                f"/polls/{poll['poll_id']}/close",
                headers={**auth, "Idempotency-Key": f"close-{slug}"},
            )
            assert r.status_code == 200, r.text
