"""What one HTTP process's apps are handed: its shared services, built by matchday.bootstrap.

Three contexts, each a strict extension of the one before, all fields required (ADR 0029):

- :class:`ShopContext`: what every app has (PostgreSQL, Redis, sessions, rate limits, the
  catalogue, orders read-side, polls, the waiting room). The catalogue and polls apps need
  no more.
- :class:`EngineContext`: and the inventory engine, with the carts and supplier services
  built on it (the shop, channels and suppliers apps).
- :class:`CheckoutContext`: and checkout over a payment gateway (orders, webhooks).
- :class:`AdminContext`: and the operators' login, sessions and audit log, channel
  administration, the stock import and the reports (admin).

An app declares the context it needs in its ``build`` signature, so mypy refuses the wrong
one where an ``assert ctx.checkout is not None`` used to refuse it at start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from matchday.admin.audit import AuditLog
from matchday.admin.auth import AdminAuth
from matchday.admin.ports import StockRows
from matchday.admin.stock_import import StockImporter
from matchday.catalog.service import CatalogService
from matchday.channels.admin import ChannelAdmin
from matchday.inventory.client import InventoryClient
from matchday.metrics import Metrics
from matchday.polls.service import PollService
from matchday.reports.ports import ReportViews
from matchday.settings import Settings
from matchday.shop.carts import CartService
from matchday.shop.checkout import CheckoutService
from matchday.shop.events import RedisOrderEvents
from matchday.shop.ports import ShopStore
from matchday.suppliers.config import SupplierServices
from matchday.waitingroom.auto import AutoDrops
from matchday.waitingroom.gate import PassGate
from matchday.waitingroom.service import DropAdmin, WaitingRoom
from matchday.web.admin_session import AdminSessions
from matchday.web.idempotency import IdempotencyStore
from matchday.web.identity import Identity
from matchday.web.ratelimit import RateLimiter


@dataclass(frozen=True)
class WaitingRoomParts:
    """The process's one waiting room: its caches and SKU map are shared by its apps."""

    room: WaitingRoom
    gate: PassGate
    admin: DropAdmin
    auto: AutoDrops | None = None  # MATCHDAY_AUTO_DROP

    def tick(self) -> None:
        if self.auto is not None:
            self.auto.tick()


@dataclass(frozen=True, kw_only=True)
class ShopContext:
    settings: Settings
    pool: AsyncConnectionPool
    redis: Redis
    identity: Identity
    limiter: RateLimiter
    idempotency: IdempotencyStore
    catalog: CatalogService
    repo: ShopStore
    events: RedisOrderEvents
    polls: PollService
    waitingroom: WaitingRoomParts
    metrics: Metrics

    async def close(self) -> None:
        await self.polls.aclose()
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


@dataclass(frozen=True, kw_only=True)
class EngineContext(ShopContext):
    stock: InventoryClient
    carts: CartService
    suppliers: SupplierServices


@dataclass(frozen=True, kw_only=True)
class CheckoutContext(EngineContext):
    checkout: CheckoutService


@dataclass(frozen=True, kw_only=True)
class AdminContext(CheckoutContext):
    auth: AdminAuth
    audit: AuditLog
    sessions: AdminSessions
    channels: ChannelAdmin
    importer: StockImporter
    stock_rows: StockRows
    reports: Callable[[], Awaitable[ReportViews]]  # the replica's, opened on first use
