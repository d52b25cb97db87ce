"""What the engine's own actors run on: a shard of the inventory engine, and the event
publisher (the outbox relay and the reports' refresh).

Apart from the rest of the composition root because of what it imports: a shard or the
publisher needs the engine and its storage, not the web apps, the gateways or the supplier
services that ``contexts`` builds. Importing those cost each of these processes ~1.2 s of
CPU at start, four such processes a stack (``bootstrap/__init__.py`` loads a module on
first use of one of its names).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.reports.ports import Refresh
from matchday.settings import Settings
from matchday.storage import db
from matchday.storage.inventory_repo import SHARD_CONNECTION_OPTIONS, InventoryRepository
from matchday.storage.reports_repo import ReportsRepository

if TYPE_CHECKING:
    from matchday.events.relay import OutboxRelay


async def open_shard_core(
    settings: Settings,
    shard_id: int,
    *,
    pool_name: str,
    after_recovery: Callable[[], None] | None = None,
) -> ShardCore:
    """One shard of the inventory engine over a small pool of its own (ADR 0001); not yet
    started (recovering is the caller's, which may fail and be tried again)."""
    s = settings
    # No check on borrow: it costs a round trip per batch. After a PostgreSQL restart a
    # dead connection fails one batch, the pool discards it, and the shard recovers.
    pool = db.make_pool(
        s.database_url,
        min_size=1,
        max_size=2,
        name=pool_name,
        check=False,
        options=SHARD_CONNECTION_OPTIONS,
    )
    await pool.open(wait=False)
    return ShardCore(
        shard_id,
        Router(s.shards, s.dedicated_shards),
        InventoryRepository(pool),
        policy=s.policy(),
        cache_size=s.shard_cache_size,
        dedupe_window_s=s.dedupe_window_s,
        after_recovery=after_recovery,
    )


@dataclass(frozen=True, kw_only=True)
class PublisherParts:
    """What the event publisher actor runs: the outbox relay, the reports' refresh on the
    same pool, and the close of that pool and the relay's Redis client."""

    relay: OutboxRelay
    reports: Refresh
    close: Callable[[], Awaitable[None]]


async def open_publisher(settings: Settings) -> PublisherParts:
    """The outbox relay (ADR 0002) and the reports' refresh (issue 6), over a small pool."""
    # Here, not above: a restarted shard imports this module too, and Redis's client and
    # the relay were ~0.3 s of its way back (issue 12: recovery after ray.kill).
    from redis.asyncio import Redis

    from matchday.events.relay import OutboxRelay

    s = settings
    # No check round trip per borrow: the relay borrows once per run, 20 times a second
    # when idle; a dead connection fails that run, and the next borrows another.
    pool = db.make_pool(s.database_url, min_size=1, max_size=2, name="outbox-relay", check=False)
    await pool.open(wait=False)
    # Not redis_client's pool: one relay, one connection at a time, and a publish of a
    # whole batch may take longer than that client's 1 s timeout.
    redis = Redis.from_url(s.redis_url, socket_timeout=5, socket_connect_timeout=5)
    relay = OutboxRelay(
        pool,
        redis,
        stream=s.stream_name,
        availability_key=s.availability_key,
        maxlen=s.stream_maxlen,
    )

    async def close() -> None:
        try:
            await redis.aclose()
        finally:
            await pool.close()

    return PublisherParts(relay=relay, reports=ReportsRepository(pool), close=close)
