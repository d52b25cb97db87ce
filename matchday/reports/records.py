"""The typed rows of each report, one frozen dataclass per materialized view (006_reports.sql).

Timestamps are timezone-aware datetimes as PostgreSQL returns them; ``refreshed_at`` is when
the view was last refreshed, so a reader sees how stale a report is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class SkuVelocity:
    sku: str
    product_id: str  # '' for a SKU no product offers
    units_24h: int
    units_7d: int
    units_per_hour: float
    units_per_day: float
    last_sold_at: datetime | None
    refreshed_at: datetime


@dataclass(frozen=True)
class ProductVelocity:
    product_id: str
    name: str
    units_24h: int
    units_7d: int
    units_per_hour: float
    units_per_day: float
    last_sold_at: datetime | None
    refreshed_at: datetime


@dataclass(frozen=True)
class TrendingProduct:
    product_id: str
    name: str
    units_now: int  # the last 24 hours
    units_before: int  # the 24 hours before
    change: int
    growth: float | None  # units_now / units_before; None when nothing sold before
    refreshed_at: datetime


@dataclass(frozen=True)
class Turnover:
    sku: str
    product_id: str
    units_sold_30d: int
    units_on_hand: int
    average_on_hand: float
    turnover: float
    refreshed_at: datetime


@dataclass(frozen=True)
class DeadStock:
    sku: str
    product_id: str
    units_on_hand: int
    last_sold_at: datetime | None  # None: never sold
    days_since_sale: int | None
    refreshed_at: datetime


@dataclass(frozen=True)
class PaymentSuccess:
    gateway: str
    region: str
    attempts: int
    succeeded: int
    declined: int
    pending: int
    other: int
    success_rate: float  # succeeded / attempts with a known outcome
    refreshed_at: datetime


@dataclass(frozen=True)
class Chargebacks:
    account: str
    reason: str
    disputes: int
    amount_cents: int
    lost: int
    won: int
    open: int
    last_at: datetime | None
    refreshed_at: datetime


@dataclass(frozen=True)
class SuspiciousActivity:
    kind: str
    day: date
    events: int
    customers: int
    orders: int
    last_at: datetime | None
    refreshed_at: datetime


@dataclass(frozen=True)
class ChannelSales:
    """Units sold per channel ('shop' for the shop's own) and SKU (015_channels.sql)."""

    channel: str
    sku: str
    units_24h: int
    units_7d: int
    units_30d: int
    last_sold_at: datetime | None
    refreshed_at: datetime
