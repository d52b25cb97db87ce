"""EventPublisher: hosts the outbox relay (``matchday.events.relay``) and the reports' refresh
as a Ray actor; both come from ``bootstrap.open_publisher``, over one small pool."""

from __future__ import annotations

import asyncio
from typing import Any

from actors.metrics import outbox_sampler, sample_every
from matchday.settings import Settings

PUBLISHER_NAME = "event-publisher"


class EventPublisher:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = Settings(**settings)
        self._parts: Any = None
        self._relay: Any = None
        self._task: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._reports: asyncio.Task[int] | None = None

    async def start(self) -> bool:
        if self._task is not None:
            return True
        from matchday import bootstrap
        from matchday.reports.schedule import refresh_every

        self._parts = await bootstrap.open_publisher(self.settings)
        self._relay = self._parts.relay
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._relay.run())
        self._sampler = sample_every(outbox_sampler(self._relay))
        # Issue 6: the reports' materialized views, refreshed every 5 minutes on this pool.
        self._reports = loop.create_task(refresh_every(self._parts.reports, 300.0))
        return True

    async def stats(self) -> dict[str, Any]:
        await self.start()
        return {"published": self._relay.published, "failures": self._relay.failures}

    async def close(self) -> None:
        """Stop the relay and the refresh, and close their pool and Redis client (a test
        hosting the actor in-process; on Ray it lives as long as the cluster)."""
        tasks = [t for t in (self._task, self._sampler, self._reports) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = self._sampler = self._reports = None
        if self._parts is not None:
            await self._parts.close()
            self._parts = None
