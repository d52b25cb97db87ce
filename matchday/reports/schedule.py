"""The scheduled refresh: a plain async loop, hosted by any long-lived process or actor."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from matchday.domain.errors import Unavailable
from matchday.reports.ports import Refresh

log = logging.getLogger(__name__)


async def refresh_every(
    repo: Refresh, interval: float, *, stop: asyncio.Event | None = None
) -> int:
    """Refresh the views every ``interval`` seconds until ``stop`` is set (or cancelled).

    A database outage skips one round instead of ending the loop: the next round catches up,
    since each refresh recomputes a view from scratch. Returns the refreshes completed.
    """
    stop = stop or asyncio.Event()
    done = 0
    while not stop.is_set():
        try:
            await repo.refresh()
            done += 1
        except Unavailable as exc:
            log.warning("reports refresh skipped: %s", exc)
        # Waiting on the event (not sleeping) lets a stop end the loop at once.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
    return done
