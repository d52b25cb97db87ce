"""The services one HTTP process uses, opened once per process (a Serve replica, a test)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import BlockingConnectionPool, Redis

from matchday.catalog.service import CatalogService
from matchday.metrics import NOOP, Metrics
from matchday.payments.gateway import PaymentGateway
from matchday.polls.offers import OfferBook, OfferCodes
from matchday.settings import Settings
from matchday.shop.carts import CartService
from matchday.shop.checkout import CheckoutService
from matchday.shop.events import RedisOrderEvents
from matchday.shop.ports import Stock
from matchday.storage.db import make_pool
from matchday.storage.payments_repo import PaymentsRepository
from matchday.storage.polls_repo import PollsRepository
from matchday.storage.shop_repo import ShopRepository
from matchday.web.idempotency import IdempotencyStore
from matchday.web.identity import Identity
from matchday.web.ratelimit import RateLimiter

log = logging.getLogger(__name__)


@dataclass
class ShopContext:
    settings: Settings
    pool: AsyncConnectionPool
    redis: Redis
    identity: Identity
    limiter: RateLimiter
    idempotency: IdempotencyStore
    catalog: CatalogService
    repo: ShopRepository
    events: RedisOrderEvents
    stock: Stock | None = None
    carts: CartService | None = None
    checkout: CheckoutService | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    metrics: Metrics = NOOP  # the Serve wrappers inject Ray's recorder (serve/common.py)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        stock: Stock | None = None,
        gateway: PaymentGateway | None = None,
        pool_size: int = 10,
    ) -> ShopContext:
        # Before anything opens: an opened pool that is never closed keeps the process from
        # exiting (a missing secret key raised after the pool opened, and the replica hung).
        identity = Identity(settings.secret_key.get_secret_value())
        # No check per borrow: it cost a round trip per query on the hot path, and a dead
        # connection already surfaces as a 503 (StorageConnection) and leaves the pool.
        pool = make_pool(
            settings.database_url, max_size=pool_size, name="matchday-web", check=False
        )
        await pool.open(wait=False)
        # Short timeouts: a Redis that stops answering must cost a request milliseconds,
        # not the default of waiting forever. A blocking pool: redis-py's default one refuses
        # the 101st concurrent command at once (MaxConnectionsError), fewer than a replica has
        # in flight; with this one a burst waits briefly for a free connection, and only then
        # fails with redis's ConnectionError, which every caller treats as Redis being away
        # (fail open, fall back to PostgreSQL, or a retryable 503). from_pool: the client
        # owns the pool, so close() closes it too.
        redis = Redis.from_pool(
            BlockingConnectionPool.from_url(
                settings.redis_url,
                max_connections=settings.redis_max_connections,
                timeout=settings.redis_pool_timeout_s,
                socket_timeout=1.0,
                socket_connect_timeout=1.0,
            )
        )
        repo = ShopRepository(pool)
        catalog = CatalogService(
            pool,
            redis,
            availability_key=settings.availability_key,
            cache_ttl_s=settings.catalog_cache_ttl_s,
        )
        events = RedisOrderEvents(redis)
        ctx = cls(
            settings=settings,
            pool=pool,
            redis=redis,
            identity=identity,
            limiter=RateLimiter(
                redis, per_s=settings.rate_limit_per_s, burst=settings.rate_limit_burst
            ),
            idempotency=IdempotencyStore(
                redis,
                ttl_s=settings.idempotency_ttl_s,
                secret_key=settings.secret_key.get_secret_value(),
            ),
            catalog=catalog,
            repo=repo,
            events=events,
            stock=stock,
        )
        if stock is not None:
            ctx.carts = CartService(repo, stock, catalog, hold_ttl_s=settings.default_ttl_s)
            if gateway is not None:
                ctx.checkout = CheckoutService(
                    repo,
                    stock,
                    catalog,
                    gateway,
                    events,
                    payment_hold_s=settings.payment_hold_s,
                    payments=PaymentsRepository(pool),
                    offers=OfferBook(
                        PollsRepository(pool), OfferCodes(settings.secret_key.get_secret_value())
                    ),
                )
        return ctx

    async def close(self) -> None:
        await self.redis.aclose()
        await self.pool.close()

    async def ready(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            async with self.pool.connection(timeout=2.0) as conn:
                await conn.execute("SELECT 1")
            checks["postgres"] = "ok"
        except Exception as exc:  # readiness reports any failure, it never raises
            checks["postgres"] = f"down: {type(exc).__name__}"
        try:
            await self.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"down: {type(exc).__name__}"
        return checks
