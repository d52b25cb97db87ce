"""Live results for many watchers: one Redis wait per poll per process, not one per browser.

Each watched poll has one task here that blocks on the poll's ``changes`` stream and wakes
every local watcher when it moves; bursts of votes are coalesced into one wake-up per
``coalesce_s``, so a match-day vote storm costs each watcher a few events a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from matchday.domain.errors import Unavailable
from matchday.polls.tally import Tally

log = logging.getLogger(__name__)

# Under the Redis client's socket timeout (1 s in ShopContext), or every wait would fail.
BLOCK_MS = 800


@dataclass
class _Watch:
    version: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    watchers: int = 0
    task: asyncio.Task[None] | None = None


class LiveHub:
    def __init__(self, tally: Tally, *, coalesce_s: float = 0.2) -> None:
        self.tally = tally
        self.coalesce_s = coalesce_s
        self._polls: dict[str, _Watch] = {}

    @contextlib.asynccontextmanager
    async def watching(self, poll_id: str):  # type: ignore[no-untyped-def]
        watch = self._polls.setdefault(poll_id, _Watch())
        watch.watchers += 1
        if watch.task is None:
            watch.task = asyncio.get_running_loop().create_task(self._follow(poll_id, watch))
        try:
            yield watch
        finally:
            watch.watchers -= 1
            if watch.watchers == 0:
                self._polls.pop(poll_id, None)
                if watch.task is not None:
                    watch.task.cancel()

    @staticmethod
    async def wait(watch: _Watch, seen: int, within_s: float) -> int:
        """The watch's version once it differs from ``seen``, or ``seen`` after ``within_s``."""
        if watch.version == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.changed.wait(), within_s)
        return watch.version

    async def _follow(self, poll_id: str, watch: _Watch) -> None:
        last: str | None = None
        while True:
            try:
                if last is None:
                    last = await self.tally.last_change(poll_id)
                moved = await self.tally.wait_change(poll_id, last, BLOCK_MS)
            except Unavailable as exc:
                log.warning("live results of %s: %s", poll_id, exc)
                moved = None
                await asyncio.sleep(1.0)
                watch.version += 1  # watchers re-read (and show what PostgreSQL has)
                self._wake(watch)
                continue
            if moved is None:
                continue
            last = moved
            watch.version += 1
            self._wake(watch)
            await asyncio.sleep(self.coalesce_s)

    @staticmethod
    def _wake(watch: _Watch) -> None:
        watch.changed.set()
        watch.changed = asyncio.Event()
