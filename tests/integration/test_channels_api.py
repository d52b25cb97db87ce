"""Marketplace channels through the real admin app and the channel app (ASGI) over real
PostgreSQL, Redis and the shard core: keys issued once and stored as hashes, allocations set
through the engine, sales idempotent by request id, every bad input a 4xx that changes
nothing, every action audited; and the reports split sales by channel."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from cluster.cli import main as cli_main
from matchday import bootstrap
from matchday.reports.registry import REPORTS
from matchday.settings import Settings
from matchday.storage.reports_repo import ReportsRepository
from matchday.web import channels_api
from tests.conftest import uid
from tests.integration.test_admin_api import Admin, open_admin

pytestmark = pytest.mark.integration

# What a channel's answers carry (its key only in the two that issue one), and a SKU's view.
CHANNEL_KEYS = {"channel_id", "name", "active", "created_at", "updated_at", "key_issued_at"}
STOCK_KEYS = {
    "sku",
    "channel_id",
    "available",
    "max_units",
    "max_percent",
    "cap",
    "held",
    "sold",
    "remaining_allocation",
    "available_to_channel",
}


@dataclass
class Market:
    admin: Admin
    ops: dict[str, str]  # an admin session's headers
    api: httpx.AsyncClient  # the channel app, at /api/channels

    async def channel(self) -> tuple[str, dict[str, str]]:
        """A fresh channel: (id, its Authorization header)."""
        cid = uid("mkt").lower()
        r = await self.admin.http.post(
            "/channels", json={"channel_id": cid, "name": f"Market {cid}"}, headers=self.ops
        )
        assert r.status_code == 201, r.text
        assert set(r.json()) == CHANNEL_KEYS | {"api_key"}  # the key in this answer only
        assert r.headers["Cache-Control"] == "no-store"
        return cid, {"Authorization": f"Bearer {r.json()['api_key']}"}

    async def allocate(self, cid: str, **body: Any) -> httpx.Response:
        return await self.admin.http.put(f"/channels/{cid}/allocations", json=body,
                                         headers=self.ops)  # fmt: skip

    async def reserve(self, key: dict[str, str], sku: str, qty: int = 1, **kw: Any) -> Any:
        body = {"request_id": uid("rq"), "sku": sku, "qty": qty, "order_id": uid("ord"),
                "customer_id": "buyer-1", **kw}  # fmt: skip
        return await self.api.post("/reserve", json=body, headers=key)


@pytest.fixture(scope="module")  # one stack: tests/integration/shop_stack.py
async def market(settings: Settings) -> AsyncIterator[Market]:
    async with open_admin(settings) as admin:
        ctx = admin.stack.ctx
        app = channels_api.build(ctx, bootstrap.channel_sales(ctx))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, root_path="/api/channels"),
            base_url="http://shop.test/api/channels",
        ) as api:
            yield Market(admin, await admin.login(), api)


async def test_a_channel_key_is_shown_once_stored_as_a_hash_and_a_rotation_retires_it(
    market: Market,
) -> None:
    cid, key = await market.channel()
    secret = key["Authorization"].split()[1]
    async with market.admin.stack.ctx.pool.connection() as conn:
        row = await (
            await conn.execute("SELECT key_hash FROM channels WHERE channel_id = %s", (cid,))
        ).fetchone()
    assert row is not None and secret.encode() not in bytes(row[0])
    listed = (await market.admin.http.get("/channels", headers=market.ops)).json()
    assert secret not in str(listed) and any(c["channel_id"] == cid for c in listed["channels"])
    assert set(listed) == {"channels"} and all(set(c) == CHANNEL_KEYS for c in listed["channels"])
    one = (await market.admin.http.get(f"/channels/{cid}", headers=market.ops)).json()
    assert set(one) == CHANNEL_KEYS and (one["channel_id"], one["active"]) == (cid, True)
    assert (await market.api.get("/stock", headers=key)).status_code == 200
    r = await market.admin.http.post(f"/channels/{cid}/key", headers=market.ops)
    assert r.status_code == 201 and r.headers["Cache-Control"] == "no-store"
    assert set(r.json()) == CHANNEL_KEYS | {"api_key"} and r.json()["channel_id"] == cid
    new = {"Authorization": f"Bearer {r.json()['api_key']}"}
    old = await market.api.get("/stock", headers=key)
    assert old.status_code == 401 and set(old.json()) == {"code", "message", "retryable"}
    assert (await market.api.get("/stock", headers=new)).status_code == 200
    audited = {e.action for e in await market.admin.audit(cid)}
    assert {"channel.create", "channel.rotate"} <= audited
    assert all(secret not in str(e) for e in await market.admin.audit(cid))
    again = await market.admin.http.post(
        "/channels", json={"channel_id": cid, "name": "Twice"}, headers=market.ops
    )
    assert again.status_code == 409


async def test_a_channel_sells_within_its_allocation_idempotently(market: Market) -> None:
    (sku,) = await market.admin.stack.product(stock=10)
    cid, key = await market.channel()
    r = await market.allocate(cid, sku=sku, max_units=3)
    assert r.status_code == 200, r.text
    assert r.json()["cap"] == 3 and r.json()["available_to_channel"] == 3
    assert set(r.json()) == STOCK_KEYS and r.json()["max_percent"] is None
    shares = await market.admin.http.get(f"/channels/{cid}/allocations", headers=market.ops)
    assert shares.json() == {"stock": [r.json()]}
    body = {"request_id": "order-7-line-1", "sku": sku, "qty": 2, "order_id": "order-7",
            "customer_id": "buyer-7"}  # fmt: skip
    first = await market.api.post("/reserve", json=body, headers=key)
    assert first.status_code == 201, first.text
    retry = await market.api.post("/reserve", json=body, headers=key)
    assert retry.json() == first.json()  # the same hold, not a second one
    reused = await market.api.post("/reserve", json={**body, "qty": 1}, headers=key)
    assert reused.status_code == 409
    over = await market.reserve(key, sku, 2)
    assert over.status_code == 409 and over.json()["code"] == "allocation_exceeded"
    rid = first.json()["reservation_id"]
    paid = {"request_id": "order-7-pay", "reservation_id": rid, "order_id": "order-7"}
    done = await market.api.post("/commit", json=paid, headers=key)
    assert done.status_code == 200 and done.json()["status"] == "committed"
    assert (await market.api.post("/commit", json=paid, headers=key)).json() == done.json()
    stock = (await market.api.get("/stock", params={"sku": sku}, headers=key)).json()
    assert stock["channel_id"] == cid and [set(v) for v in stock["stock"]] == [STOCK_KEYS]
    view = stock["stock"][0]
    assert (view["held"], view["sold"], view["remaining_allocation"]) == (0, 2, 1)
    assert await market.admin.stack.stock(sku) == (10, 0, 2)
    assert any(e.action == "channel.allocate" for e in await market.admin.audit(cid))


async def test_a_channel_touches_only_its_own_reservations(market: Market) -> None:
    (sku,) = await market.admin.stack.product(stock=5)
    _, key = await market.channel()
    _, other = await market.channel()
    held = (await market.reserve(key, sku)).json()
    stolen = {"request_id": uid("rq"), "reservation_id": held["reservation_id"]}
    r = await market.api.post("/release", json=stolen, headers=other)
    assert r.status_code == 404 and r.json()["code"] == "unknown_reservation"
    ok = await market.api.post("/release", json=stolen, headers=key)
    assert ok.status_code == 200 and ok.json()["status"] == "released"
    assert await market.admin.stack.stock(sku) == (5, 0, 0)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"qty": 0}, 422),
        ({"qty": "2"}, 422),
        ({"sku": "no spaces allowed"}, 422),
        ({"request_id": ""}, 422),
        ({"ttl_s": 1}, 422),
        ({"extra": 1}, 422),
        ({"sku": "NO-SUCH-SKU-ANYWHERE"}, 404),
    ],
)
async def test_bad_input_is_a_4xx_in_the_error_shape_and_changes_nothing(
    market: Market, body: dict[str, Any], status: int
) -> None:
    (sku,) = await market.admin.stack.product(stock=4)
    _, key = await market.channel()
    full = {"request_id": uid("rq"), "sku": sku, "qty": 1, "order_id": "o-1",
            "customer_id": "b-1", **body}  # fmt: skip
    r = await market.api.post("/reserve", json=full, headers=key)
    assert r.status_code == status, r.text
    assert set(r.json()) >= {"code", "message", "retryable"}
    assert await market.admin.stack.stock(sku) == (4, 0, 0)


async def test_no_key_a_forged_key_and_a_disabled_channel_are_refused(market: Market) -> None:
    (sku,) = await market.admin.stack.product(stock=4)
    cid, key = await market.channel()
    forged = "mdch_" + cid + "_" + hashlib.sha256(b"guess").hexdigest()
    for headers in ({}, {"Authorization": f"Bearer {forged}"}, {"Authorization": "Bearer x"}):
        r = await market.reserve(headers, sku)
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    off = await market.admin.http.post(f"/channels/{cid}/disable", headers=market.ops)
    assert off.status_code == 200 and off.json()["active"] is False
    assert set(off.json()) == CHANNEL_KEYS
    r = await market.reserve(key, sku)
    assert r.status_code == 403
    assert (await market.admin.http.post(f"/channels/{cid}/enable", headers=market.ops)).json()[
        "active"
    ]
    assert (await market.reserve(key, sku)).status_code == 201
    bad = await market.allocate(cid, sku=sku, max_units=1, max_percent=5)
    assert bad.status_code == 422


async def test_the_channel_sales_report_splits_sales_by_channel(market: Market) -> None:
    stack = market.admin.stack
    (sku,) = await stack.product(stock=10)
    cid, key = await market.channel()
    for _ in range(2):
        held = (await market.reserve(key, sku)).json()
        paid = {"request_id": uid("rq"), "reservation_id": held["reservation_id"],
                "order_id": uid("o")}  # fmt: skip
        assert (await market.api.post("/commit", json=paid, headers=key)).status_code == 200
    engine: Any = stack.ctx.stock
    shop = await engine.reserve(uid("rq"), sku, 3, uid("cart"), "fan", 300)
    await engine.commit(uid("rq"), sku, shop.reservation_id, uid("order"))
    reports = ReportsRepository(stack.ctx.pool)
    await reports.refresh()
    rows = [r for r in await REPORTS["channel-sales"].fetch(reports, 10_000) if r.sku == sku]
    assert {(r.channel, r.units_24h, r.units_30d) for r in rows} == {(cid, 2, 2), ("shop", 3, 3)}


async def test_the_cli_manages_channels_audited_and_prints_a_key_once(
    market: Market, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s = market.admin.stack.ctx.settings
    monkeypatch.setenv("MATCHDAY_DATABASE_URL", s.database_url)
    monkeypatch.setenv("MATCHDAY_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("MATCHDAY_SECRET_KEY", s.secret_key.get_secret_value())

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(cli_main, ["channels", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    cid = uid("cli").lower()
    code, out, _ = await cli("create", cid, "--name", "CLI Market")
    key = re.search(r"API key: (mdch_\S+)", out)
    assert code == 0 and key and "shown this once" in out
    assert (await market.api.get("/stock", headers=_bearer(key.group(1)))).status_code == 200
    code, _, err = await cli("create", cid, "--name", "again")
    assert code == 1 and '"code": "conflict"' in err
    code, _, err = await cli("create", "Bad_Id", "--name", "x")
    assert code == 1 and '"code": "invalid_input"' in err and "Traceback" not in err
    code, out, _ = await cli("rotate-key", cid)
    new = re.search(r"API key: (mdch_\S+)", out)
    assert code == 0 and new and new.group(1) != key.group(1)
    assert (await market.api.get("/stock", headers=_bearer(key.group(1)))).status_code == 401
    code, out, _ = await cli("disable", cid)
    assert code == 0 and json.loads(out)["active"] is False
    assert (await market.api.get("/stock", headers=_bearer(new.group(1)))).status_code == 403
    code, out, _ = await cli("list")
    assert cid in out and new.group(1) not in out
    actions = [
        (e.action, e.outcome, e.client.startswith("cli:")) for e in await market.admin.audit(cid)
    ]
    assert actions == [
        ("channel.disable", "ok", True), ("channel.rotate", "ok", True),
        ("channel.create", "conflict", True), ("channel.create", "ok", True),
    ]  # fmt: skip
    assert key.group(1) not in repr(await market.admin.audit(cid))


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
