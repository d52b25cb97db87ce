"""Live results for many watchers: one Redis wait per poll per process, not one per browser.

Each watched poll has one task here that blocks on the poll's ``changes`` stream and wakes
every local watcher when it moves; bursts of votes are coalesced into one wake-up per
``coalesce_s``, so a match-day vote storm costs each watcher a few events a second.

The task lives exactly as long as the poll has a watcher: the last one leaving cancels it,
and the task itself stops at its next turn once nobody watches (a cancellation swallowed by
the Redis client, matchday.tasks, cannot keep it alive).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from matchday.domain.errors import Unavailable
from matchday.polls.tally import Tally
from matchday.tasks import raise_if_cancelled

log = logging.getLogger(__name__)

# Under the Redis client's socket timeout (1 s, bootstrap.redis_client), or every wait fails.
BLOCK_MS = 800
# How long aclose() waits for the loops to unwind (each is at most one Redis wait away).
CLOSE_WAIT_S = 2.0


# How long a new watcher waits for the loop to learn where the poll's changes stand.
READY_WAIT_S = 2.0


@dataclass
class _Watch:
    version: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    watchers: int = 0
    task: asyncio.Task[None] | None = None
    # Set once the loop has read the newest change it starts after (or could not).
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class LiveHub:
    def __init__(self, tally: Tally, *, coalesce_s: float = 0.2) -> None:
        self.tally = tally
        self.coalesce_s = coalesce_s
        self._polls: dict[str, _Watch] = {}

    @contextlib.asynccontextmanager
    async def watching(self, poll_id: str) -> AsyncIterator[_Watch]:
        watch = self._polls.setdefault(poll_id, _Watch())
        watch.watchers += 1
        if watch.task is None:
            watch.task = asyncio.get_running_loop().create_task(
                self._follow(poll_id, watch), name=f"live results of {poll_id}"
            )
        try:
            # A watcher reads its first snapshot after this: a vote the loop counts as
            # already seen is in that snapshot, any later one wakes the watcher. Yielded
            # before it, a vote landing between the two was in neither (the storefront
            # showed 0 votes after its own vote until the next one).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.ready.wait(), READY_WAIT_S)
            yield watch
        finally:
            watch.watchers -= 1
            if watch.watchers == 0:
                if self._polls.get(poll_id) is watch:
                    del self._polls[poll_id]
                if watch.task is not None:
                    watch.task.cancel()

    def loops(self) -> list[asyncio.Task[None]]:
        """The running live-results tasks, one per watched poll."""
        return [w.task for w in self._polls.values() if w.task is not None and not w.task.done()]

    async def aclose(self) -> None:
        """End every loop (a process shutting down, a test ending)."""
        watches = list(self._polls.values())
        self._polls.clear()
        tasks = [w.task for w in watches if w.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_WAIT_S)

    @staticmethod
    async def wait(watch: _Watch, seen: int, within_s: float) -> int:
        """The watch's version once it differs from ``seen``, or ``seen`` after ``within_s``."""
        if watch.version == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.changed.wait(), within_s)
        return watch.version

    def _watched(self, poll_id: str, watch: _Watch) -> bool:
        return self._polls.get(poll_id) is watch and watch.watchers > 0

    async def _follow(self, poll_id: str, watch: _Watch) -> None:
        last: str | None = None
        while self._watched(poll_id, watch):
            raise_if_cancelled()
            try:
                if last is None:
                    last = await self.tally.last_change(poll_id)
                    watch.ready.set()
                moved = await self.tally.wait_change(poll_id, last, BLOCK_MS)
            except Unavailable as exc:
                watch.ready.set()  # watchers show what the stores have; a bump re-reads
                if not self._watched(poll_id, watch):
                    return  # nobody to tell: a stopping loop says nothing
                log.warning("live results of %s: %s", poll_id, exc)
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
