"""Where reports are read: the read replica when MATCHDAY_REPORTS_DATABASE_URL is set, else
the primary. Refreshing always goes to the primary (a replica is read-only).
``matchday.bootstrap.open_reports`` opens the two."""

from __future__ import annotations

from dataclasses import dataclass

from matchday.reports.ports import ReportViews
from matchday.settings import Settings


def reader_url(settings: Settings) -> str:
    return settings.reports_database_url or settings.database_url


@dataclass
class Reports:
    reader: ReportViews  # the replica's, or the primary's
    primary: ReportViews  # for refresh()
