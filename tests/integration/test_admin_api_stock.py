"""Stock over the admin API (in-process app, real PostgreSQL, Redis and shard core): restock,
supplier sync and limits reach the engine and the audit log; retries with an Idempotency-Key
apply once; CSV imports are all or nothing and never applied twice."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from matchday.settings import Settings
from tests.conftest import uid
from tests.integration.test_admin_api import Admin, open_admin

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")  # one stack: tests/integration/shop_stack.py
async def admin(settings: Settings) -> AsyncIterator[Admin]:
    async with open_admin(settings) as a:
        yield a


def _csv(*rows: str) -> bytes:
    return ("sku,action,quantity\n" + "".join(f"{r}\n" for r in rows)).encode()


CSV = {"Content-Type": "text/csv"}


# -- single SKUs -----------------------------------------------------------------------------


async def test_restock_set_and_limits_change_the_engines_stock_and_are_audited(
    admin: Admin,
) -> None:
    (sku,) = await admin.stack.product(stock=10)
    auth = await admin.login()

    r = await admin.http.post(f"/stock/{sku}/restock", json={"qty": 15}, headers=auth)
    assert r.status_code == 200, r.text
    assert (r.json()["on_hand"], r.json()["available"]) == (25, 25)
    assert await admin.stack.stock(sku) == (25, 0, 0)

    r = await admin.http.put(f"/stock/{sku}", json={"units": 6}, headers=auth)
    assert r.status_code == 200, r.text
    assert await admin.stack.stock(sku) == (6, 0, 0)

    limits = {"per_customer_limit": 2, "low_stock_threshold": 3, "low_stock_order_cap": 1}
    r = await admin.http.put(f"/stock/{sku}/limits", json=limits, headers=auth)
    assert r.status_code == 200, r.text
    row = (await admin.stack.inventory.stock_rows([sku]))[sku]
    assert (row.per_customer_limit, row.low_stock_threshold, row.low_stock_order_cap) == (2, 3, 1)
    # The engine enforces it: a shopper may now hold 2 at most.
    shopper = await admin.stack.session()
    cart = await admin.stack.cart(shopper)
    r = await admin.stack.shop.post(
        f"/carts/{cart}/items", json={"sku": sku, "qty": 3}, headers=shopper
    )
    assert (r.status_code, r.json()["code"]) == (409, "limit_exceeded")

    entries = await admin.audit(sku)
    assert [(e.action, e.outcome, e.params) for e in entries] == [
        ("stock.limits", "ok", limits),
        ("stock.set", "ok", {"units": 6}),
        ("stock.restock", "ok", {"qty": 15}),
    ]
    assert all(e.request_id and e.request_id.startswith("admin:") for e in entries)


async def test_a_cap_without_a_threshold_is_refused_409_and_audited_with_its_code(
    admin: Admin,
) -> None:
    (sku,) = await admin.stack.product(stock=10, limit=4)
    auth = await admin.login()
    r = await admin.http.put(f"/stock/{sku}/limits", json={"low_stock_order_cap": 1}, headers=auth)
    assert (r.status_code, r.json()["code"]) == (409, "invariant_violation")
    assert (await admin.stack.inventory.stock_rows([sku]))[sku].per_customer_limit == 4
    assert [e.outcome for e in await admin.audit(sku, "stock.limits")] == ["invariant_violation"]


async def test_stock_of_an_unknown_sku_is_404(admin: Admin) -> None:
    auth = await admin.login()
    sku = uid("NOPE").upper()
    r = await admin.http.get(f"/stock/{sku}", headers=auth)
    assert (r.status_code, r.json()["code"]) == (404, "unknown_sku")
    r = await admin.http.post(f"/stock/{sku}/restock", json={"qty": 1}, headers=auth)
    assert (r.status_code, r.json()["code"]) == (404, "unknown_sku")


async def test_a_restock_retried_with_the_same_key_applies_once_and_replays_the_answer(
    admin: Admin,
) -> None:
    (sku,) = await admin.stack.product(stock=10)
    auth = await admin.login()
    headers = {**auth, "Idempotency-Key": "restock-delivery-42"}
    first = await admin.http.post(f"/stock/{sku}/restock", json={"qty": 5}, headers=headers)
    again = await admin.http.post(f"/stock/{sku}/restock", json={"qty": 5}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await admin.stack.stock(sku) == (15, 0, 0)
    other = await admin.http.post(f"/stock/{sku}/restock", json={"qty": 6}, headers=headers)
    assert (other.status_code, other.json()["code"]) == (422, "invalid_input")
    assert await admin.stack.stock(sku) == (15, 0, 0)
    replayed = [e.params.get("replayed", False) for e in await admin.audit(sku)]
    assert replayed == [False, True, False]  # newest first: refused, replayed, applied


async def _forget_http_records(admin: Admin) -> None:
    """Make Redis forget the HTTP idempotency records, as an eviction or a failover may."""
    async for k in admin.stack.ctx.redis.scan_iter(match="matchday:idem:admin:*"):
        await admin.stack.ctx.redis.delete(k)


async def test_the_same_key_lost_from_redis_still_cannot_restock_twice(admin: Admin) -> None:
    (sku,) = await admin.stack.product(stock=10)
    auth = await admin.login()
    headers = {**auth, "Idempotency-Key": "restock-delivery-43"}
    r = await admin.http.post(f"/stock/{sku}/restock", json={"qty": 5}, headers=headers)
    assert r.status_code == 200, r.text
    await _forget_http_records(admin)  # the engine's request id, derived from the key, remains
    r = await admin.http.post(f"/stock/{sku}/restock", json={"qty": 5}, headers=headers)
    assert r.status_code == 200, r.text
    assert await admin.stack.stock(sku) == (15, 0, 0)


async def test_one_key_on_another_sku_is_refused_and_once_forgotten_is_another_request(
    admin: Admin,
) -> None:
    a, b = await admin.stack.product(stock=1, sizes=2)
    auth = await admin.login()
    headers = {**auth, "Idempotency-Key": "same-key-twice"}
    assert (await admin.http.put(f"/stock/{a}", json={"units": 4}, headers=headers)).is_success
    r = await admin.http.put(f"/stock/{b}", json={"units": 7}, headers=headers)
    assert (r.status_code, r.json()["code"]) == (422, "invalid_input")
    await _forget_http_records(admin)
    # The engine id names the SKU too, so b's sync is not answered with a's first answer.
    r = await admin.http.put(f"/stock/{b}", json={"units": 7}, headers=headers)
    assert (r.status_code, r.json()["sku"]) == (200, b)
    assert (await admin.stack.stock(a), await admin.stack.stock(b)) == ((4, 0, 0), (7, 0, 0))


# -- CSV import ------------------------------------------------------------------------------


async def test_an_import_with_one_bad_row_is_422_listing_every_problem_and_applies_nothing(
    admin: Admin,
) -> None:
    a, b = await admin.stack.product(stock=5, sizes=2)
    auth = await admin.login()
    ghost = uid("GHOST").upper()
    data = _csv(f"{a},restock,10", f"{b},set,-1", f"{ghost},restock,2", f"{a},set,3")
    r = await admin.http.post("/stock/import", content=data, headers={**auth, **CSV})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "invalid_import"
    assert [e["line"] for e in body["errors"]] == [3, 4, 5]
    assert "unknown SKU" in body["errors"][1]["message"]
    assert "duplicate SKU" in body["errors"][2]["message"]
    assert (await admin.stack.stock(a), await admin.stack.stock(b)) == ((5, 0, 0), (5, 0, 0))
    (entry,) = [
        e for e in await admin.repo.recent_audit(50, "stock.import") if e.key_id == _key(auth)
    ]
    assert (entry.outcome, entry.params["bytes"]) == ("invalid_import", len(data))


async def test_a_valid_import_applies_every_row_and_a_replay_applies_nothing_twice(
    admin: Admin,
) -> None:
    a, b = await admin.stack.product(stock=5, sizes=2)
    auth = await admin.login()
    headers = {**auth, **CSV, "Idempotency-Key": uid("import")}
    data = _csv(f"{a},restock,10", f"{b},set,2")
    r = await admin.http.post("/stock/import", content=data, headers=headers)
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["status"], report["row_count"], report["applied"], report["sent"]) == (
        "applied", 2, 2, 2,
    )  # fmt: skip
    assert (await admin.stack.stock(a), await admin.stack.stock(b)) == ((15, 0, 0), (2, 0, 0))

    again = await admin.http.post("/stock/import", content=data, headers=headers)
    assert again.status_code == 200 and again.json() == report
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert (await admin.stack.stock(a), await admin.stack.stock(b)) == ((15, 0, 0), (2, 0, 0))


async def test_the_same_file_sent_twice_without_a_key_is_applied_once(admin: Admin) -> None:
    (sku,) = await admin.stack.product(stock=5)
    auth = await admin.login()
    data = _csv(f"{sku},restock,10")
    first = await admin.http.post("/stock/import", content=data, headers={**auth, **CSV})
    again = await admin.http.post("/stock/import", content=data, headers={**auth, **CSV})
    assert first.status_code == again.status_code == 200, again.text
    assert (first.json()["sent"], again.json()["sent"]) == (1, 0)
    assert first.json()["import_id"] == again.json()["import_id"]
    assert await admin.stack.stock(sku) == (15, 0, 0)


async def test_an_import_that_is_not_csv_is_415_and_changes_nothing(admin: Admin) -> None:
    (sku,) = await admin.stack.product(stock=5)
    auth = await admin.login()
    data = _csv(f"{sku},restock,10")
    r = await admin.http.post(
        "/stock/import", content=data, headers={**auth, "Content-Type": "application/json"}
    )
    assert (r.status_code, r.json()["code"]) == (415, "unsupported_media_type")
    assert await admin.stack.stock(sku) == (5, 0, 0)


async def test_an_import_may_be_larger_than_json_bodies_but_not_over_one_mib(
    admin: Admin,
) -> None:
    (sku,) = await admin.stack.product(stock=5)
    auth = await admin.login()
    padded = _csv(f"{sku},restock,10") + b"\n" * 100_000  # blank lines: rejected, not 413
    r = await admin.http.post("/stock/import", content=padded, headers={**auth, **CSV})
    assert (r.status_code, r.json()["code"]) == (422, "invalid_import")
    huge = b"x" * ((1 << 20) + 1)
    r = await admin.http.post("/stock/import", content=huge, headers={**auth, **CSV})
    assert (r.status_code, r.json()["code"]) == (413, "payload_too_large")
    assert await admin.stack.stock(sku) == (5, 0, 0)


def _key(auth: dict[str, str]) -> str:
    return auth["Authorization"].split(".")[1]
