"""Reports over the admin API: a session reads them as JSON or CSV; without one, nothing."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import pytest

from matchday.inventory.commands import Commit, Reserve
from matchday.inventory.shard import ShardCore
from matchday.settings import Settings
from matchday.storage.reports_repo import ReportsRepository
from tests.conftest import uid
from tests.integration.shop_stack import ROUTER
from tests.integration.test_admin_api import Admin, open_admin


@pytest.fixture
async def admin(settings: Settings) -> AsyncIterator[Admin]:
    async with open_admin(settings) as a:
        yield a


async def test_a_session_reads_a_report_as_json_and_as_csv(admin: Admin) -> None:
    (sku,) = await admin.stack.product(stock=5)
    core = ShardCore(0, ROUTER, admin.stack.inventory)
    await core.start()
    held = (await core.apply([Reserve(uid("rq"), sku, 2, uid("cart"), uid("fan"), 60)]))[0]
    rid = held.unwrap().reservation_id  # type: ignore[union-attr]
    (await core.apply([Commit(uid("rq"), sku, rid, uid("order"))]))[0].unwrap()
    await ReportsRepository(admin.stack.ctx.pool).refresh()

    session = await admin.login()
    names = (await admin.http.get("/reports", headers=session)).json()
    assert {"velocity", "dead-stock", "payments"} <= set(names)
    assert all(isinstance(what, str) and what for what in names.values())
    r = await admin.http.get("/reports/velocity", params={"limit": 1000}, headers=session)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"report", "rows"} and r.json()["report"] == "velocity"
    mine = [row for row in r.json()["rows"] if row["sku"] == sku]
    assert len(mine) == 1 and mine[0]["units_24h"] == 2, mine

    r = await admin.http.get(
        "/reports/velocity", params={"format": "csv", "limit": 1000}, headers=session
    )
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == 'attachment; filename="velocity.csv"'
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["units_24h"] for row in rows if row["sku"] == sku] == ["2"]


async def test_reports_need_a_session_and_a_known_name(admin: Admin) -> None:
    assert (await admin.http.get("/reports/velocity")).status_code == 401
    session = await admin.login()
    r = await admin.http.get("/reports/no-such-report", headers=session)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = await admin.http.get("/reports/velocity", params={"format": "xml"}, headers=session)
    assert r.status_code == 422
