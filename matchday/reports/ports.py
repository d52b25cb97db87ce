"""What the reports need from storage: the materialized views of 006_reports.sql, read and
refreshed (matchday/storage/reports_repo.py implements it)."""

from __future__ import annotations

from typing import Protocol

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


class Refresh(Protocol):
    async def refresh(self) -> None:
        """Recompute every view (on the primary: a replica receives them by replication)."""
        ...


class ReportViews(Refresh, Protocol):
    """The views' rows, largest first, at most ``limit`` of each."""

    async def sku_velocity(self, limit: int = 1000) -> list[SkuVelocity]: ...

    async def product_velocity(self, limit: int = 1000) -> list[ProductVelocity]: ...

    async def trending(self, limit: int = 1000) -> list[TrendingProduct]: ...

    async def turnover(self, limit: int = 1000) -> list[Turnover]: ...

    async def dead_stock(self, limit: int = 1000) -> list[DeadStock]: ...

    async def payment_success(self, limit: int = 1000) -> list[PaymentSuccess]: ...

    async def chargebacks(self, limit: int = 1000) -> list[Chargebacks]: ...

    async def suspicious(self, limit: int = 1000) -> list[SuspiciousActivity]: ...

    async def channel_sales(self, limit: int = 1000) -> list[ChannelSales]: ...

    async def poll_demand(self, limit: int = 1000) -> list[PollDemand]: ...

    async def replaying(self) -> bool:
        """True on a replica (in recovery): its reports lag the primary a little."""
        ...
