"""All SQL of the reports: refreshing and reading the materialized views of 006_reports.sql
(turnover's is rebuilt in 008_turnover.sql and 009_initial_stock.sql).

The repository reads from whichever pool it is given: the read replica's when one is
configured (``matchday.bootstrap.open_reports``), else the primary's. ``refresh`` must run on the
primary, since a replica is read-only and receives the refreshed views by replication.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from psycopg_pool import AsyncConnectionPool

from matchday.polls.report import PollDemand
from matchday.reports.records import (
    ChannelSales,
    Chargebacks,
    DeadStock,
    PaymentSuccess,
    ProductVelocity,
    SkuVelocity,
    SuspiciousActivity,
    TrendingProduct,
    Turnover,
)
from matchday.storage.db import StorageConnection

T = TypeVar("T")

# Refresh order matters: report_product_velocity is computed from report_sku_velocity.
VIEWS = (
    "report_sku_velocity",
    "report_product_velocity",
    "report_trending_products",
    "report_inventory_turnover",
    "report_dead_stock",
    "report_payment_success",
    "report_chargebacks",
    "report_suspicious_activity",
    "report_poll_demand",  # 007: reads the two velocity views above
    "report_channel_sales",  # 015
)


class ReportsRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def refresh(self) -> None:
        """Refresh every view CONCURRENTLY: readers keep the old rows until each is done.

        One transaction per view, so a long refresh of one does not hold back the others'
        new rows, and a failure leaves the views refreshed so far refreshed.
        """
        for view in VIEWS:
            async with StorageConnection(self.pool, "reports") as conn:
                await conn.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {view}")

    async def sku_velocity(self, limit: int = 1000) -> list[SkuVelocity]:
        return await self._rows(
            SkuVelocity, "report_sku_velocity", "units_24h DESC, units_7d DESC, sku", limit
        )

    async def product_velocity(self, limit: int = 1000) -> list[ProductVelocity]:
        return await self._rows(
            ProductVelocity,
            "report_product_velocity",
            "units_24h DESC, units_7d DESC, product_id",
            limit,
        )

    async def trending(self, limit: int = 1000) -> list[TrendingProduct]:
        # New demand (growth NULL) ranks by units; otherwise the biggest ratio first.
        return await self._rows(
            TrendingProduct,
            "report_trending_products",
            "growth DESC NULLS FIRST, change DESC, product_id",
            limit,
        )

    async def turnover(self, limit: int = 1000) -> list[Turnover]:
        return await self._rows(Turnover, "report_inventory_turnover", "turnover DESC, sku", limit)

    async def dead_stock(self, limit: int = 1000) -> list[DeadStock]:
        return await self._rows(DeadStock, "report_dead_stock", "units_on_hand DESC, sku", limit)

    async def payment_success(self, limit: int = 1000) -> list[PaymentSuccess]:
        return await self._rows(PaymentSuccess, "report_payment_success", "gateway, region", limit)

    async def chargebacks(self, limit: int = 1000) -> list[Chargebacks]:
        return await self._rows(
            Chargebacks, "report_chargebacks", "disputes DESC, account, reason", limit
        )

    async def suspicious(self, limit: int = 1000) -> list[SuspiciousActivity]:
        return await self._rows(
            SuspiciousActivity, "report_suspicious_activity", "day DESC, events DESC, kind", limit
        )

    async def channel_sales(self, limit: int = 1000) -> list[ChannelSales]:
        """Sales split by channel, per SKU (issue 17)."""
        return await self._rows(
            ChannelSales, "report_channel_sales", "units_30d DESC, channel, sku", limit
        )

    async def _rows(self, cls: type[T], view: str, order: str, limit: int) -> list[T]:
        # The column list comes from the row class, so a row and its view cannot drift
        # apart silently: a missing column fails the query. view and order are constants.
        columns = ", ".join(f.name for f in fields(cls))  # type: ignore[arg-type]
        async with StorageConnection(self.pool, "reports") as conn:
            rows: list[tuple[Any, ...]] = await (
                await conn.execute(
                    f"SELECT {columns} FROM {view} ORDER BY {order} LIMIT %s",
                    (limit,),
                )
            ).fetchall()
        return [cls(*row) for row in rows]

    async def replaying(self) -> bool:
        """True on a replica (in recovery); the reports it serves lag the primary a little."""
        async with StorageConnection(self.pool, "reports") as conn:
            row = await (await conn.execute("SELECT pg_is_in_recovery()")).fetchone()
        return bool(row and row[0])

    async def poll_demand(self, limit: int = 1000) -> list[PollDemand]:
        """Votes per poll option beside its SKU's and product's sales velocity (issue 7)."""
        return await self._rows(
            PollDemand, "report_poll_demand", "poll_id, votes DESC, option_id", limit
        )
