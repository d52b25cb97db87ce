"""EventPublisher: hosts the outbox relay (``matchday.events.relay``) as a Ray actor."""

from __future__ import annotations

import asyncio
from typing import Any

from actors.metrics import outbox_sampler, sample_every
from matchday.settings import Settings

PUBLISHER_NAME = "event-publisher"


class EventPublisher:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = Settings(**settings)
        self._relay: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> bool:
        if self._task is not None:
            return True
        import redis.asyncio as aioredis

        from matchday.events.relay import OutboxRelay
        from matchday.storage.db import make_pool

        s = self.settings
        # No check round trip per borrow: the relay borrows once per run, 20 times a second
        # when idle; a dead connection fails that run, and the next borrows another.
        pool = make_pool(s.database_url, min_size=1, max_size=2, name="outbox-relay", check=False)
        await pool.open(wait=False)
        self._relay = OutboxRelay(
            pool,
            aioredis.Redis.from_url(s.redis_url, socket_timeout=5, socket_connect_timeout=5),
            stream=s.stream_name,
            availability_key=s.availability_key,
            maxlen=s.stream_maxlen,
        )
        self._task = asyncio.get_running_loop().create_task(self._relay.run())
        self._sampler = sample_every(outbox_sampler(self._relay))
        # Issue 6: the reports' materialized views, refreshed every 5 minutes on this pool.
        from matchday.reports.schedule import refresh_every
        from matchday.storage.reports_repo import ReportsRepository

        self._reports = asyncio.get_running_loop().create_task(
            refresh_every(ReportsRepository(pool), 300.0)
        )
        return True

    async def stats(self) -> dict[str, Any]:
        await self.start()
        return {"published": self._relay.published, "failures": self._relay.failures}
