"""The row of the ``poll-demand`` report (report_poll_demand in 007_polls.sql)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PollDemand:
    poll_id: str
    question: str
    status: str
    option_id: str
    label: str
    sku: str  # '' for an option naming no SKU
    product_id: str  # the SKU's product, '' when none
    votes: int
    vote_share: float  # of the poll's votes
    sku_units_7d: int
    sku_units_per_day: float
    product_units_7d: int
    product_units_per_day: float
    refreshed_at: datetime
