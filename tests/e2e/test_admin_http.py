"""The admin API deployed on Serve: second factor, stock changes through the engine, audit."""

from __future__ import annotations

import time

import pyotp
import pytest

from matchday.admin.auth import AdminAuth
from matchday.storage.admin_repo import AdminRepository
from matchday.storage.db import make_pool
from tests.e2e.conftest import Served
from tests.e2e.test_serve_http import new_product, stock_of

pytestmark = pytest.mark.e2e


async def admin_key(served: Served) -> tuple[str, str]:
    pool = make_pool(served.settings.database_url)
    await pool.open()
    try:
        api_key, secret, _ = await AdminAuth(AdminRepository(pool)).create_key("e2e-ops")
    finally:
        await pool.close()
    return api_key, secret


async def test_an_operator_needs_both_factors_then_restocks_over_http(served: Served) -> None:
    _, sku = await new_product(served, stock=3)
    api_key, secret = await admin_key(served)
    async with served.client("/api/admin") as admin:
        r = await admin.post("/login", json={"api_key": api_key, "totp_code": "000000"})
        assert r.status_code == 401
        r = await admin.post("/stock/" + sku + "/restock", json={"qty": 5})
        assert r.status_code == 401  # no session, no change
        assert (await stock_of(served, sku)) == (3, 0, 0)

        code = pyotp.TOTP(secret).at(time.time() + 30)  # a step the failed try did not use
        r = await admin.post("/login", json={"api_key": api_key, "totp_code": code})
        assert r.status_code == 200, r.text
        auth = {"Authorization": f"Bearer {r.json()['session_token']}"}
        r = await admin.post(
            f"/stock/{sku}/restock", json={"qty": 5}, headers={**auth, "Idempotency-Key": "rs-1"}
        )
        assert r.status_code == 200, r.text
        again = await admin.post(
            f"/stock/{sku}/restock", json={"qty": 5}, headers={**auth, "Idempotency-Key": "rs-1"}
        )
        assert again.status_code == 200
        assert (await stock_of(served, sku)) == (8, 0, 0)  # applied once
        r = await admin.get("/audit", params={"limit": 20}, headers=auth)
        assert r.status_code == 200, r.text
        mine = [e for e in r.json()["entries"] if e["target"] == sku]
        # Newest first: the replay (audited as such, not applied again), the restock, and the
        # attempt without a session.
        assert [e["outcome"] for e in mine] == ["ok", "ok", "unauthorized"], mine
        assert mine[0]["params"].get("replayed") is True


async def test_an_operator_refunds_a_paid_order_over_http_once(served: Served) -> None:
    _, sku = await new_product(served, stock=2)
    async with served.client("/api/shop") as shop, served.client("/api/orders") as orders:
        auth = {"Authorization": f"Bearer {(await shop.post('/session')).json()['token']}"}
        cart = (await shop.post("/carts", headers=auth)).json()["cart_id"]
        await shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=auth)
        order = (
            await orders.post("/", json={"cart_id": cart, "payment_token": "pm_card_visa"},
                              headers=auth)
        ).json()  # fmt: skip
        assert order["status"] == "paid"
    api_key, secret = await admin_key(served)
    async with served.client("/api/admin") as admin:
        code = pyotp.TOTP(secret).now()
        login = await admin.post("/login", json={"api_key": api_key, "totp_code": code})
        session = {"Authorization": f"Bearer {login.json()['session_token']}"}
        path = f"/orders/{order['order_id']}/refund"
        r = await admin.post(path, json={}, headers={**session, "Idempotency-Key": "rf-1"})
        assert r.status_code == 200, r.text
        again = await admin.post(path, json={}, headers={**session, "Idempotency-Key": "rf-1"})
        assert again.status_code == 200 and again.json() == r.json()
    async with served.client("/api/orders") as orders:
        got = (await orders.get(f"/{order['order_id']}", headers=auth)).json()
        assert got["status"] == "refunded"
