"""The composition root: every pool, client, repository and service a process uses is built
here, from :class:`Settings` and the ports a caller injects (the inventory engine, a payment
gateway, a clock, a metrics recorder), and nowhere else (ADR 0029).

A process opens the context it needs and extends it step by step:

    ctx = await open_shop(settings, metrics=m)        # catalogue, polls, sessions, ...
    ctx = with_engine(ctx, stock)                      # + carts, supplier services
    ctx = with_checkout(ctx, gateway)                  # + checkout
    ctx = with_admin(ctx)                              # + operators' auth, audit, imports

Features never build their own collaborators, and the HTTP layer (matchday.web) receives
them ready, as the fields of a typed context without optional fields. The Serve
deployments and Ray actors inject what only they can make (an engine client over actor
handles, a gateway over a deployment handle, Ray's metrics) and call in here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import BlockingConnectionPool, Redis

from matchday.admin.audit import AuditLog
from matchday.admin.auth import AdminAuth
from matchday.admin.sealing import TotpSeal
from matchday.admin.stock_import import StockImporter
from matchday.catalog.demo import seed_catalog
from matchday.catalog.service import CatalogService
from matchday.channels.admin import ChannelAdmin
from matchday.channels.sales import ChannelSales
from matchday.demo import demo_stock
from matchday.domain.clock import Clock, SystemClock
from matchday.events.relay import OutboxRelay
from matchday.inventory.client import InventoryClient
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.metrics import NOOP, Metrics
from matchday.payments.events import StripeEvents
from matchday.payments.factory import build_gateway
from matchday.payments.fraud import FraudRules, VelocityLimits
from matchday.payments.gateway import PaymentGateway
from matchday.payments.router import PaymentRouter
from matchday.payments.worker import PaymentsWorker
from matchday.polls.drain import VoteDrain
from matchday.polls.offers import OfferBook, OfferCodes
from matchday.polls.service import PollService
from matchday.reports.ports import Refresh, ReportViews
from matchday.reports.reader import Reports
from matchday.settings import Settings
from matchday.shop.carts import CartService
from matchday.shop.checkout import CheckoutService
from matchday.shop.events import RedisOrderEvents
from matchday.storage.admin_repo import AdminRepository
from matchday.storage.catalog_repo import CatalogRepository
from matchday.storage.channels_repo import ChannelsRepository
from matchday.storage.db import make_pool
from matchday.storage.drops_repo import DropsRepository, InventoryLevels
from matchday.storage.inventory_repo import InventoryRepository
from matchday.storage.payments_repo import PaymentsRepository
from matchday.storage.payments_watch import PaymentWatch
from matchday.storage.polls_repo import PollsRepository
from matchday.storage.reports_repo import ReportsRepository
from matchday.storage.shop_repo import ShopRepository
from matchday.storage.supplier_syncs_repo import SyncsRepository
from matchday.storage.suppliers_repo import SuppliersRepository
from matchday.suppliers.admin import SupplierAdmin
from matchday.suppliers.apply import Applier
from matchday.suppliers.bulk import BulkSyncs
from matchday.suppliers.config import SupplierServices, SupplierSettings
from matchday.suppliers.ports import StockEngine
from matchday.suppliers.push import PushService
from matchday.suppliers.signing import SecretSeal
from matchday.waitingroom.auto import AutoConfig, AutoDrops
from matchday.waitingroom.gate import PassGate
from matchday.waitingroom.rates import RateSource
from matchday.waitingroom.redis_store import RedisDemand, RedisQueue
from matchday.waitingroom.service import DropAdmin, WaitingRoom
from matchday.waitingroom.tokens import Tokens
from matchday.web.admin_session import AdminSessions
from matchday.web.context import (
    AdminContext,
    CheckoutContext,
    EngineContext,
    ShopContext,
    WaitingRoomParts,
)
from matchday.web.idempotency import IdempotencyStore
from matchday.web.identity import Identity
from matchday.web.ratelimit import RateLimiter

SYSTEM_CLOCK = SystemClock()


# -- the shared context ----------------------------------------------------------------------


async def open_shop(
    settings: Settings,
    *,
    metrics: Metrics = NOOP,
    clock: Clock = SYSTEM_CLOCK,
    pool_size: int = 10,
    pool_name: str = "matchday-web",
) -> ShopContext:
    """The services every HTTP process shares, over a pool and a Redis client it opens."""
    secret = settings.secret_key.get_secret_value()
    # Before anything opens: an opened pool that is never closed keeps the process from
    # exiting (a missing secret key raised after the pool opened, and the replica hung).
    identity = Identity(secret)
    # No check per borrow: it cost a round trip per query on the hot path, and a dead
    # connection already surfaces as a 503 (StorageConnection) and leaves the pool.
    pool = make_pool(settings.database_url, max_size=pool_size, name=pool_name, check=False)
    await pool.open(wait=False)
    redis = redis_client(settings)
    catalog = CatalogService(
        CatalogRepository(pool),
        redis,
        availability_key=settings.availability_key,
        cache_ttl_s=settings.catalog_cache_ttl_s,
        metrics=metrics,
    )
    return ShopContext(
        settings=settings,
        pool=pool,
        redis=redis,
        identity=identity,
        limiter=RateLimiter(
            redis, per_s=settings.rate_limit_per_s, burst=settings.rate_limit_burst
        ),
        idempotency=IdempotencyStore(redis, ttl_s=settings.idempotency_ttl_s, secret_key=secret),
        catalog=catalog,
        repo=ShopRepository(pool),
        events=RedisOrderEvents(redis),
        polls=PollService(PollsRepository(pool), redis, OfferCodes(secret)),
        waitingroom=waiting_room(settings, pool, redis, clock, metrics),
        metrics=metrics,
    )


def redis_client(settings: Settings) -> Redis:
    # Short timeouts: a Redis that stops answering must cost a request milliseconds,
    # not the default of waiting forever. A blocking pool: redis-py's default one refuses
    # the 101st concurrent command at once (MaxConnectionsError), fewer than a replica has
    # in flight; with this one a burst waits briefly for a free connection, and only then
    # fails with redis's ConnectionError, which every caller treats as Redis being away
    # (fail open, fall back to PostgreSQL, or a retryable 503). from_pool: the client
    # owns the pool, so close() closes it too.
    return Redis.from_pool(
        BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            timeout=settings.redis_pool_timeout_s,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
        )
    )


def waiting_room(
    settings: Settings,
    pool: AsyncConnectionPool,
    redis: Redis,
    clock: Clock,
    metrics: Metrics,
) -> WaitingRoomParts:
    tokens = Tokens(settings.secret_key.get_secret_value())
    drops = DropsRepository(pool)
    queue = RedisQueue(redis)
    levels = InventoryLevels(pool)
    room = WaitingRoom(drops, queue, levels, tokens, clock, metrics=metrics)
    gate = PassGate(drops.live_skus, tokens, clock, room.spent, metrics=metrics)
    rates = rate_source(settings)
    auto = None
    if settings.auto_drop:
        audit = AuditLog(AdminRepository(pool))
        demand = RedisDemand(redis)
        config = auto_config(settings)
        auto = AutoDrops(config, gate, demand, drops, queue, audit, clock, metrics=metrics)
        gate.on_refresh = auto.tick
    return WaitingRoomParts(
        room=room, gate=gate, admin=DropAdmin(drops, queue, levels, clock, rates), auto=auto
    )


def rate_source(settings: Settings) -> RateSource:
    """Where ``auto`` rates come from: MATCHDAY_CAPACITY_PROFILE (422 when unset)."""
    return RateSource(settings.capacity_profile, settings.capacity_utilisation)


def auto_config(settings: Settings) -> AutoConfig:
    return AutoConfig(
        adds_per_s=settings.auto_drop_adds_per_s,
        window_s=settings.auto_drop_window_s,
        hold_s=settings.auto_drop_hold_s,
        bucket_s=min(5.0, settings.auto_drop_window_s),
        rate_per_s=settings.auto_drop_rate_per_s,
        rates=rate_source(settings),
    )


# -- the engine and checkout -----------------------------------------------------------------


def with_engine(
    ctx: ShopContext,
    stock: InventoryClient,
    *,
    clock: Clock = SYSTEM_CLOCK,
    suppliers: SupplierSettings | None = None,
) -> EngineContext:
    """``ctx`` and the inventory engine, with the services built on it."""
    s = ctx.settings
    return EngineContext(
        **_fields_of(ctx),
        stock=stock,
        carts=CartService(ctx.repo, stock, ctx.catalog, hold_ttl_s=s.default_ttl_s),
        suppliers=supplier_services(
            ctx.pool,
            stock,
            s.secret_key.get_secret_value(),
            settings=suppliers or SupplierSettings(),
            clock=clock,
            metrics=ctx.metrics,
        ),
    )


def with_checkout(
    ctx: EngineContext,
    gateway: PaymentGateway,
    *,
    clock: Clock = SYSTEM_CLOCK,
    screen_orders: bool = True,
) -> CheckoutContext:
    """``ctx`` and checkout over ``gateway``. ``screen_orders``: the velocity rules hold a
    new order for review (every process of a running shop; tests that place many orders
    from one address turn them off)."""
    s = ctx.settings
    fraud = None
    if screen_orders:
        limits = VelocityLimits(
            window_s=s.fraud_window_s,
            per_customer=s.fraud_max_per_customer,
            per_card=s.fraud_max_per_card,
            per_ip=s.fraud_max_per_ip,
        )
        fraud = FraudRules(payments_repository(s, ctx.pool), limits)
    checkout = CheckoutService(
        ctx.repo,
        ctx.stock,
        ctx.catalog,
        gateway,
        ctx.events,
        payment_hold_s=s.payment_hold_s,
        payments=payments_repository(s, ctx.pool),
        fraud=fraud,
        settle_grace_s=s.payment_settle_grace_s,
        offers=OfferBook(PollsRepository(ctx.pool), OfferCodes(s.secret_key.get_secret_value())),
        clock=clock,
    )
    return CheckoutContext(**_fields_of(ctx), checkout=checkout)


def routed_gateways(gateway: PaymentGateway) -> Mapping[str, PaymentGateway]:
    """The accounts behind a Stripe router (the worker and webhooks ask each by name); none
    behind the test gateway's handle (its memory lives in the Payments deployment)."""
    return gateway.gateways if isinstance(gateway, PaymentRouter) else {}


# -- the payment gateway ---------------------------------------------------------------------


def payments_repository(settings: Settings, pool: AsyncConnectionPool) -> PaymentsRepository:
    """The payment records over ``pool``, in this process's region: every attempt row it
    writes carries ``payment_region``, which the payments report splits success by."""
    return PaymentsRepository(pool, settings.payment_region)


@dataclass(frozen=True, kw_only=True)
class GatewayParts:
    """A process's payment gateway, and the close of the pool its records go through."""

    gateway: PaymentGateway
    close: Callable[[], Awaitable[None]]


async def open_gateway(
    settings: Settings,
    *,
    test_gateway: Callable[[], PaymentGateway],
    pool_size: int = 2,
    pool_name: str,
) -> GatewayParts:
    """The gateway a process pays through, built the same way in every process that pays
    (the Payments deployment, the webhooks, the payments worker; ADR 0008).

    With Stripe: the router over the configured accounts (their keys, region, breakers and
    timeouts from ``settings``), its records on a small pool of its own, so the gateway is
    an input of the process's wiring rather than a part of it. With the test gateway:
    ``test_gateway()``, which the caller injects because only it knows where that gateway's
    memory lives (in the Payments deployment; a handle to it everywhere else). It is asked
    before any pool opens, so one that raises (Serve not deployed yet) leaves nothing open.
    """
    if settings.gateway_kind != "stripe":
        return GatewayParts(gateway=test_gateway(), close=_nothing_to_close)
    pool = make_pool(settings.database_url, max_size=pool_size, name=pool_name)
    await pool.open(wait=False)
    try:
        gateway = build_gateway(settings, payments_repository(settings, pool))
    except BaseException:
        await pool.close()
        raise
    return GatewayParts(gateway=gateway, close=pool.close)


async def _nothing_to_close() -> None:
    return None


# -- what one app or actor adds --------------------------------------------------------------


def with_admin(ctx: CheckoutContext) -> AdminContext:
    """``ctx`` and what only the admin app uses: the operators' login, sessions and audit
    log, channel administration, the stock import, and the reports."""
    secret = ctx.settings.secret_key.get_secret_value()
    repo = AdminRepository(ctx.pool)
    return AdminContext(
        **_fields_of(ctx),
        auth=AdminAuth(repo, seal=TotpSeal(secret)),
        audit=AuditLog(repo),
        sessions=AdminSessions(secret, repo),
        channels=ChannelAdmin(ChannelsRepository(ctx.pool), ctx.stock),
        importer=StockImporter(repo, ctx.stock, ctx.settings.policy()),
        stock_rows=InventoryRepository(ctx.pool),
        reports=admin_reports(ctx),
    )


def vote_drain(ctx: ShopContext) -> VoteDrain:
    """Write-behind of the votes stream into PostgreSQL (ADR 0013), one consumer per replica."""
    return VoteDrain(ctx.redis, PollsRepository(ctx.pool), ctx.polls.tally.stream)


def channel_sales(ctx: EngineContext) -> ChannelSales:
    return ChannelSales(ChannelsRepository(ctx.pool), ctx.stock)


def stripe_events(ctx: CheckoutContext, gateway: PaymentGateway) -> StripeEvents:
    return StripeEvents(
        ctx.repo,
        payments_repository(ctx.settings, ctx.pool),
        ctx.checkout,
        routed_gateways(gateway),
    )


@dataclass(frozen=True, kw_only=True)
class WebhooksParts:
    """What the webhooks app runs on: checkout over the process's gateway, the events it
    applies, each account's signing secret, and the close of everything it opened."""

    ctx: CheckoutContext
    events: StripeEvents
    secrets: Mapping[str, str]
    close: Callable[[], Awaitable[None]]


async def open_webhooks(
    settings: Settings,
    stock: InventoryClient,
    *,
    test_gateway: Callable[[], PaymentGateway],
    metrics: Metrics = NOOP,
    clock: Clock = SYSTEM_CLOCK,
) -> WebhooksParts:
    """The webhooks app's parts. With Stripe it pays through a router of its own over the
    same accounts as checkout (their state is in PostgreSQL and at Stripe); with the test
    gateway no account has a signing secret, so every webhook route answers 404."""
    gw = await open_gateway(settings, test_gateway=test_gateway, pool_name="matchday-webhooks-gw")
    ctx = await _after(gw.close, open_shop(settings, metrics=metrics, clock=clock))
    ctx = with_checkout(with_engine(ctx, stock, clock=clock), gw.gateway, clock=clock)

    async def close() -> None:
        try:
            await ctx.close()
        finally:
            await gw.close()

    return WebhooksParts(
        ctx=ctx,
        events=stripe_events(ctx, gw.gateway),
        secrets={
            "primary": settings.stripe_webhook_secret.get_secret_value(),
            "backup": settings.stripe_backup_webhook_secret.get_secret_value(),
        },
        close=close,
    )


@dataclass(frozen=True, kw_only=True)
class PaymentsWorkerParts:
    """What the payments worker actor runs: the worker, the gateway it pays through, the
    deadline gauges' source, and the close of the pools and Redis client they use."""

    worker: PaymentsWorker
    gateway: PaymentGateway
    watch: PaymentWatch
    close: Callable[[], Awaitable[None]]


async def open_payments_worker(
    settings: Settings,
    stock: InventoryClient,
    *,
    test_gateway: Callable[[], PaymentGateway],
    metrics: Metrics = NOOP,
    clock: Clock = SYSTEM_CLOCK,
) -> PaymentsWorkerParts:
    """The worker that settles what checkout left in flight (ADR 0008), over a small pool,
    paying through the gateway :func:`open_gateway` builds for every process that pays."""
    gw = await open_gateway(settings, test_gateway=test_gateway, pool_name="payments-worker-gw")
    shop = await _after(gw.close, open_shop(settings, metrics=metrics, clock=clock, pool_size=4))
    ctx = with_checkout(with_engine(shop, stock, clock=clock), gw.gateway, clock=clock)
    s = settings
    worker = PaymentsWorker(
        ctx.repo,
        payments_repository(s, ctx.pool),
        ctx.checkout,
        routed_gateways(gw.gateway),
        base_s=s.payment_retry_base_s,
        max_s=s.payment_retry_max_s,
        stale_s=max(s.payment_settle_grace_s, 2 * s.stripe_timeout_s),
    )

    async def close() -> None:
        try:
            await ctx.close()
        finally:
            await gw.close()

    return PaymentsWorkerParts(
        worker=worker, gateway=gw.gateway, watch=PaymentWatch(ctx.pool), close=close
    )


async def _after(
    close: Callable[[], Awaitable[None]], opening: Awaitable[ShopContext]
) -> ShopContext:
    """``opening``'s context; ``close`` runs if it fails, so what was opened before it (a
    gateway's pool) is not left open by a process whose start is retried."""
    try:
        return await opening
    except BaseException:
        await close()
        raise


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
    pool = make_pool(s.database_url, min_size=1, max_size=2, name=pool_name, check=False)
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


def supplier_services(
    pool: AsyncConnectionPool,
    engine: StockEngine,
    secret_key: str,
    *,
    settings: SupplierSettings | None = None,
    clock: Clock = SYSTEM_CLOCK,
    metrics: Metrics = NOOP,
) -> SupplierServices:
    """The supplier connectors' services over ``pool`` and ``engine`` (ADR 0025)."""
    s = settings or SupplierSettings()
    repo = SuppliersRepository(pool)
    seal = SecretSeal(secret_key)
    applier = Applier(engine, repo)
    bulk = BulkSyncs(repo, SyncsRepository(pool), clock=clock, tuning=s.tuning(), metrics=metrics)
    return SupplierServices(
        repo=repo,
        admin=SupplierAdmin(repo, seal, clock=clock, grace_s=s.secret_grace_s),
        push=PushService(
            repo, applier, seal, clock=clock, window_s=s.signature_window_s, metrics=metrics
        ),
        bulk=bulk,
        applier=applier,
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
    s = settings
    # No check round trip per borrow: the relay borrows once per run, 20 times a second
    # when idle; a dead connection fails that run, and the next borrows another.
    pool = make_pool(s.database_url, min_size=1, max_size=2, name="outbox-relay", check=False)
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


@asynccontextmanager
async def open_reports(settings: Settings) -> AsyncIterator[Reports]:
    """Small pools for a report run (the CLI), closed on exit: the replica's for reading when
    one is configured, the primary's for refreshing."""
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


def admin_reports(ctx: ShopContext) -> Callable[[], Awaitable[ReportViews]]:
    """The admin app's reports: the primary's views, or the replica's over a small pool of
    its own, opened on first use (most admin calls never need it)."""
    url = ctx.settings.reports_database_url
    if not url:
        primary = ReportsRepository(ctx.pool)

        async def on_primary() -> ReportViews:
            return primary

        return on_primary
    replica: list[ReportsRepository] = []

    async def on_replica() -> ReportViews:
        if not replica:
            pool = make_pool(url, max_size=2, name="admin-reports", check=False)
            await pool.open(wait=False)
            replica.append(ReportsRepository(pool))
        return replica[0]

    return on_replica


# -- operators' commands (the CLI) -----------------------------------------------------------


@asynccontextmanager
async def operator_pool(
    settings: Settings, name: str, *, max_size: int = 2
) -> AsyncIterator[AsyncConnectionPool]:
    """A small pool for one operator's command, closed on exit. Opened waiting: a command
    that cannot reach PostgreSQL fails at once, with the reason, instead of at its first
    query."""
    pool = make_pool(settings.database_url, max_size=max_size, name=name)
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
    pool = make_pool(settings.database_url)
    await pool.open()
    try:
        n = await InventoryRepository(pool).create_skus(
            demo_stock(), Router(settings.shards, settings.dedicated_shards)
        )
        await seed_catalog(CatalogRepository(pool))
        return n
    finally:
        await pool.close()


def _fields_of(ctx: ShopContext) -> dict[str, Any]:
    """A context's fields by name, to build the next context up from it (shallow: the
    pools, clients and services are shared, not copied)."""
    return {f.name: getattr(ctx, f.name) for f in fields(ctx)}
