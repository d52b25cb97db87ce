"""The reports by name: how each is read and charted. The CLI and the admin API use this."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from matchday.reports.ports import ReportViews


@dataclass(frozen=True)
class Chart:
    """A horizontal bar chart of ``value`` per ``label`` (the first ``top`` rows)."""

    title: str
    label: str
    value: str
    top: int = 20


@dataclass(frozen=True)
class Report:
    name: str
    description: str
    fetch: Callable[[ReportViews, int], Awaitable[Sequence[Any]]]
    chart: Chart


REPORTS: dict[str, Report] = {
    r.name: r
    for r in (
        Report(
            "velocity",
            "units sold per SKU, per hour (last 24 h) and per day (last 7 days)",
            lambda repo, limit: repo.sku_velocity(limit),
            Chart("Sales velocity, units per day (7 days)", "sku", "units_per_day"),
        ),
        Report(
            "product-velocity",
            "units sold per product, per hour (last 24 h) and per day (last 7 days)",
            lambda repo, limit: repo.product_velocity(limit),
            Chart("Sales velocity per product, units per day (7 days)", "name", "units_per_day"),
        ),
        Report(
            "trending",
            "products selling faster in the last 24 h than in the 24 h before",
            lambda repo, limit: repo.trending(limit),
            Chart("Trending: units in the last 24 h", "name", "units_now"),
        ),
        Report(
            "turnover",
            "inventory turnover per SKU: units sold in 30 days / average units on hand",
            lambda repo, limit: repo.turnover(limit),
            Chart("Inventory turnover (30 days)", "sku", "turnover"),
        ),
        Report(
            "dead-stock",
            "SKUs with units on hand and no sale in 30 days",
            lambda repo, limit: repo.dead_stock(limit),
            Chart("Dead stock: units on hand, no sale in 30 days", "sku", "units_on_hand"),
        ),
        Report(
            "payments",
            "payment attempts and success rate per gateway and region (30 days)",
            lambda repo, limit: repo.payment_success(limit),
            Chart("Payment success rate per gateway/region", "gateway", "success_rate"),
        ),
        Report(
            "chargebacks",
            "disputes per gateway account and reason",
            lambda repo, limit: repo.chargebacks(limit),
            Chart("Chargebacks per account and reason", "reason", "disputes"),
        ),
        Report(
            "suspicious",
            "suspicious activity per kind and day (30 days)",
            lambda repo, limit: repo.suspicious(limit),
            Chart("Suspicious activity per kind", "kind", "events"),
        ),
        Report(
            "poll-demand",
            "votes per poll option beside the sales velocity of its SKU and product",
            lambda repo, limit: repo.poll_demand(limit),
            Chart("Poll votes per option", "label", "votes"),
        ),
        Report(
            "channel-sales",
            "units sold per channel (the shop and each marketplace) and SKU (24 h, 7 and 30 days)",
            lambda repo, limit: repo.channel_sales(limit),
            Chart("Units sold per channel and SKU (30 days)", "channel", "units_30d"),
        ),
    )
}


async def run_report(repo: ReportViews, name: str, limit: int = 1000) -> Sequence[Any]:
    """The rows of the report called ``name`` (a key of :data:`REPORTS`)."""
    return await REPORTS[name].fetch(repo, limit)
