"""Where reports are read: the read replica when MATCHDAY_REPORTS_DATABASE_URL is set, else
the primary. Refreshing always goes to the primary (a replica is read-only)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from matchday.settings import Settings
from matchday.storage.db import make_pool
from matchday.storage.reports_repo import ReportsRepository


def reader_url(settings: Settings) -> str:
    return settings.reports_database_url or settings.database_url


@dataclass
class Reports:
    reader: ReportsRepository  # the replica's, or the primary's
    primary: ReportsRepository  # for refresh()


@asynccontextmanager
async def open_reports(settings: Settings) -> AsyncIterator[Reports]:
    """Small pools for a report run (the CLI, the admin API), closed on exit."""
    primary_pool = make_pool(settings.database_url, min_size=1, max_size=2, name="reports")
    await primary_pool.open()
    try:
        if not settings.reports_database_url:
            repo = ReportsRepository(primary_pool)
            yield Reports(repo, repo)
            return
        replica_pool = make_pool(
            settings.reports_database_url, min_size=1, max_size=2, name="reports-replica"
        )
        await replica_pool.open()
        try:
            yield Reports(ReportsRepository(replica_pool), ReportsRepository(primary_pool))
        finally:
            await replica_pool.close()
    finally:
        await primary_pool.close()
