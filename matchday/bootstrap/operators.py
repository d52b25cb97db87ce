"""What operators' commands (the CLI) open: a pool, a Redis client, and the services
each command drives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from matchday.admin.audit import AuditLog
from matchday.admin.auth import AdminAuth
from matchday.admin.sealing import TotpSeal
from matchday.bootstrap.contexts import SYSTEM_CLOCK
from matchday.catalog.demo import seed_catalog
from matchday.channels.admin import ChannelAdmin
from matchday.demo import demo_stock
from matchday.domain.clock import Clock
from matchday.inventory.client import InventoryClient
from matchday.inventory.routing import Router
from matchday.settings import Settings
from matchday.storage import db
from matchday.storage.admin_repo import AdminRepository
from matchday.storage.catalog_repo import CatalogRepository
from matchday.storage.channels_repo import ChannelsRepository
from matchday.storage.drops_repo import DropsRepository, InventoryLevels
from matchday.storage.inventory_repo import InventoryRepository
from matchday.storage.supplier_syncs_repo import SyncsRepository
from matchday.storage.suppliers_repo import SuppliersRepository
from matchday.suppliers.admin import SupplierAdmin
from matchday.suppliers.bulk import BulkSyncs
from matchday.suppliers.signing import SecretSeal
from matchday.waitingroom.rates import RateSource
from matchday.waitingroom.redis_store import RedisQueue
from matchday.waitingroom.service import DropAdmin

# -- operators' commands (the CLI) -----------------------------------------------------------


@asynccontextmanager
async def operator_pool(
    settings: Settings, name: str, *, max_size: int = 2
) -> AsyncIterator[AsyncConnectionPool]:
    """A small pool for one operator's command, closed on exit. Opened waiting: a command
    that cannot reach PostgreSQL fails at once, with the reason, instead of at its first
    query."""
    pool = db.make_pool(settings.database_url, max_size=max_size, name=name)
    await pool.open()
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def operator_redis(settings: Settings) -> AsyncIterator[Redis]:
    """A Redis client for one operator's command, closed on exit."""
    redis = Redis.from_url(settings.redis_url, socket_timeout=5.0)
    try:
        yield redis
    finally:
        await redis.aclose()


def audit_log(pool: AsyncConnectionPool) -> AuditLog:
    return AuditLog(AdminRepository(pool))


def admin_auth(pool: AsyncConnectionPool, secret_key: str) -> AdminAuth:
    """The operators' keys, their TOTP secrets sealed with ``secret_key`` (the admin API's)."""
    return AdminAuth(AdminRepository(pool), seal=TotpSeal(secret_key))


def channel_admin(pool: AsyncConnectionPool, engine: InventoryClient | None) -> ChannelAdmin:
    """Marketplace channels; ``engine`` for the commands that move stock (allocations)."""
    return ChannelAdmin(ChannelsRepository(pool), engine)


@dataclass(frozen=True, kw_only=True)
class SupplierTools:
    admin: SupplierAdmin
    bulk: BulkSyncs


def supplier_tools(pool: AsyncConnectionPool, secret_key: str) -> SupplierTools:
    """Supplier administration and bulk syncs, their secrets sealed with ``secret_key``."""
    repo = SuppliersRepository(pool)
    return SupplierTools(
        admin=SupplierAdmin(repo, SecretSeal(secret_key)),
        bulk=BulkSyncs(repo, SyncsRepository(pool)),
    )


def drop_admin(
    pool: AsyncConnectionPool, redis: Redis, rates: RateSource, *, clock: Clock = SYSTEM_CLOCK
) -> DropAdmin:
    """Drops and their queues, over ``pool`` and ``redis``, with ``rates`` for ``auto``."""
    return DropAdmin(DropsRepository(pool), RedisQueue(redis), InventoryLevels(pool), clock, rates)


def engine_rows(pool: AsyncConnectionPool) -> InventoryRepository:
    """The engine's tables: SKU pins and stock rows, read or pinned by an operator."""
    return InventoryRepository(pool)


async def seed_demo(settings: Settings) -> int:
    """The demo shop: its SKUs in the engine's tables and its catalogue; how many SKUs were new.

    Safe on every start: it inserts what is missing and never changes what is there."""
    pool = db.make_pool(settings.database_url)
    await pool.open()
    try:
        n = await InventoryRepository(pool).create_skus(
            demo_stock(), Router(settings.shards, settings.dedicated_shards)
        )
        await seed_catalog(CatalogRepository(pool))
        return n
    finally:
        await pool.close()
