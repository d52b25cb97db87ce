"""Pins and the catalogue over the admin API (in-process app, real PostgreSQL, Redis and shard
core): pin and unpin through actors/pinning.py's own steps, products created, patched and
deactivated as the shop's catalogue then shows them, each change audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from matchday.domain.errors import NotFound
from matchday.settings import Settings
from tests.conftest import uid
from tests.integration.test_admin_api import Admin, open_admin

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")  # one stack: tests/integration/shop_stack.py
async def admin(settings: Settings) -> AsyncIterator[Admin]:
    async with open_admin(settings) as a:
        yield a


# -- pins ------------------------------------------------------------------------------------


async def test_a_pinned_sku_moves_to_the_dedicated_shard_and_unpinning_moves_it_back(
    admin: Admin,
) -> None:
    (sku,) = await admin.stack.product(stock=2)
    auth = await admin.login()
    r = await admin.http.put(f"/pins/{sku}", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"sku": sku, "shard": 1}
    assert (await admin.http.get("/pins", headers=auth)).json()["pins"][sku] == 1
    assert ("adopt", 1, sku) in admin.pinning.moves

    r = await admin.http.delete(f"/pins/{sku}", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"sku": sku, "shard": None}
    assert sku not in (await admin.http.get("/pins", headers=auth)).json()["pins"]
    assert admin.pinning.moves[-1] == ("adopt", 0, sku)
    assert [e.action for e in await admin.audit(sku)] == ["unpin", "pin"]


async def test_pinning_an_unknown_sku_is_404_and_audited(admin: Admin) -> None:
    auth = await admin.login()
    sku = uid("NOPE").upper()
    r = await admin.http.put(f"/pins/{sku}", headers=auth)
    assert (r.status_code, r.json()["code"]) == (404, "unknown_sku")
    assert sku not in await admin.pinning.pins()
    assert [e.outcome for e in await admin.audit(sku, "pin")] == ["unknown_sku"]


# -- catalogue -------------------------------------------------------------------------------


def _product(slug: str, sku: str) -> dict[str, Any]:
    return {
        "slug": slug, "name": "Final ball", "category": "balls", "price_cents": 14_999,
        "image_url": f"/static/img/{slug}.svg",
        "variants": [{"sku": sku, "size": "5", "initial_stock": 30}],
    }  # fmt: skip


async def test_products_created_patched_and_deactivated_show_through_the_catalogue(
    admin: Admin,
) -> None:
    auth = await admin.login()
    r = await admin.http.post(
        "/categories", json={"slug": "balls", "name": "Balls", "position": 3}, headers=auth
    )
    assert r.status_code == 201, r.text
    slug = uid("ball").lower()
    sku = slug.upper()
    r = await admin.http.post("/products", json=_product(slug, sku), headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["variants"][0]["sku"] == sku
    assert (await admin.stack.ctx.catalog.get_product(slug)).price_cents == 14_999
    assert await admin.stack.stock(sku) == (30, 0, 0)

    again = await admin.http.post("/products", json=_product(slug, sku), headers=auth)
    assert (again.status_code, again.json()["code"]) == (409, "conflict")

    r = await admin.http.patch(f"/products/{slug}", json={"price_cents": 9_999}, headers=auth)
    assert r.status_code == 200, r.text
    product = await admin.stack.ctx.catalog.get_product(slug)
    assert (product.price_cents, product.name) == (9_999, "Final ball")

    r = await admin.http.delete(f"/products/{slug}", headers=auth)
    assert (r.status_code, r.json()) == (200, {"slug": slug, "active": False})
    with pytest.raises(NotFound):
        await admin.stack.ctx.catalog.get_product(slug)
    actions = [(e.action, e.outcome) for e in await admin.audit(slug)]
    assert actions == [
        ("product.deactivate", "ok"), ("product.update", "ok"), ("product.create", "conflict"),
        ("product.create", "ok"),
    ]  # fmt: skip


async def test_patching_or_deactivating_a_missing_product_is_404(admin: Admin) -> None:
    auth = await admin.login()
    slug = uid("ghost").lower()
    r = await admin.http.patch(f"/products/{slug}", json={"name": "x"}, headers=auth)
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = await admin.http.delete(f"/products/{slug}", headers=auth)
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
