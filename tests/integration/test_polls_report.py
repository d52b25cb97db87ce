"""The poll-demand report: votes per option beside the sales velocity of its SKU and product,
refreshed with the other views and read through the registry (CLI and admin API)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from matchday.reports.registry import REPORTS, run_report
from matchday.settings import Settings
from matchday.storage.reports_repo import ReportsRepository
from tests.integration.test_polls_api import Polls, open_polls

pytestmark = pytest.mark.integration


@pytest.fixture
async def polls(settings: Settings) -> AsyncIterator[Polls]:
    async with open_polls(settings) as p:
        yield p


async def test_votes_appear_beside_sales_velocity(polls: Polls) -> None:
    stack = polls.admin.stack
    home = await stack.product(stock=10, sizes=2)
    (away,) = await stack.product(stock=10)
    poll = await polls.create(
        options=[{"label": "Home", "sku": home[0]}, {"label": "Away", "sku": away},
                 {"label": "Neither"}],
    )  # fmt: skip
    pid = poll["poll_id"]
    for option in ("o1", "o1", "o1", "o2"):
        assert (await polls.vote(pid, option, await polls.shopper())).status_code == 201
    # Sales: 2 units of the voted SKU, 1 of the home kit's other size.
    buyer = await polls.shopper()
    cart = await stack.cart(buyer)
    for sku, qty in ((home[0], 2), (home[1], 1)):
        r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku, "qty": qty},
                                  headers=buyer)  # fmt: skip
        assert r.status_code == 201
    r = await stack.orders.post("/", json={"cart_id": cart, "payment_token": "pm_card_visa"},
                                headers=buyer)  # fmt: skip
    assert r.json()["status"] == "paid", r.text
    await polls.drained()
    await ReportsRepository(stack.ctx.pool).refresh()

    assert "poll-demand" in REPORTS
    rows = [r for r in await run_report(ReportsRepository(stack.ctx.pool), "poll-demand")
            if r.poll_id == pid]  # fmt: skip
    by_option = {r.option_id: r for r in rows}
    assert [r.option_id for r in rows] == ["o1", "o2", "o3"]  # most votes first
    assert (by_option["o1"].votes, by_option["o1"].vote_share) == (3, 0.75)
    assert by_option["o1"].sku_units_7d == 2 and by_option["o1"].product_units_7d == 3
    assert by_option["o2"].votes == 1 and by_option["o2"].product_units_7d == 0
    assert by_option["o3"].sku == "" and by_option["o3"].votes == 0

    r = await polls.admin.http.get(
        "/reports/poll-demand", params={"limit": 1000}, headers=polls.session
    )
    assert r.status_code == 200, r.text
    mine = [row for row in r.json()["rows"] if row["poll_id"] == pid]
    assert [row["votes"] for row in mine] == [3, 1, 0]
