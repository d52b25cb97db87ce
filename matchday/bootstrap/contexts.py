"""The contexts the apps run on: the shared one, the engine and checkout steps, the payment
gateway, and what one app adds (ADR 0029)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import BlockingConnectionPool, Redis

from matchday.admin.audit import AuditLog
from matchday.admin.auth import AdminAuth
from matchday.admin.sealing import TotpSeal
from matchday.admin.stock_import import StockImporter
from matchday.catalog.service import CatalogService
from matchday.channels.admin import ChannelAdmin
from matchday.channels.sales import ChannelSales
from matchday.domain.clock import Clock, SystemClock
from matchday.inventory.client import InventoryClient
from matchday.metrics import NOOP, Metrics
from matchday.payments import factory
from matchday.payments.fraud import FraudRules, VelocityLimits
from matchday.payments.gateway import PaymentGateway
from matchday.payments.router import PaymentRouter
from matchday.polls.drain import VoteDrain
from matchday.polls.offers import OfferBook, OfferCodes
from matchday.polls.service import PollService
from matchday.reports.ports import ReportViews
from matchday.settings import Settings
from matchday.shop.carts import CartService
from matchday.shop.checkout import CheckoutService
from matchday.shop.events import RedisOrderEvents
from matchday.shop.payment_events import StripeEvents
from matchday.shop.ports import ShopStore
from matchday.storage import db
from matchday.storage.admin_repo import AdminRepository
from matchday.storage.catalog_repo import CatalogRepository
from matchday.storage.channels_repo import ChannelsRepository
from matchday.storage.drops_repo import DropsRepository, InventoryLevels
from matchday.storage.inventory_repo import InventoryRepository
from matchday.storage.payments_repo import PaymentsRepository
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
    pool = db.make_pool(settings.database_url, max_size=pool_size, name=pool_name, check=False)
    await pool.open(wait=False)
    redis = redis_client(settings)
    catalog = catalog_service(settings, pool, redis, metrics)
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


def catalog_service(
    settings: Settings, pool: AsyncConnectionPool, redis: Redis, metrics: Metrics
) -> CatalogService:
    return CatalogService(
        CatalogRepository(pool),
        redis,
        availability_key=settings.availability_key,
        cache_ttl_s=settings.catalog_cache_ttl_s,
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
    checkout = checkout_service(
        ctx.settings,
        ctx.pool,
        CheckoutPorts(repo=ctx.repo, stock=ctx.stock, catalog=ctx.catalog, events=ctx.events),
        gateway,
        clock=clock,
        screen_orders=screen_orders,
    )
    return CheckoutContext(**_fields_of(ctx), checkout=checkout)


@dataclass(frozen=True, kw_only=True)
class CheckoutPorts:
    """What checkout works on besides payments: the shop's records, the stock, the prices
    and the customers' order events."""

    repo: ShopStore
    stock: InventoryClient
    catalog: CatalogService
    events: RedisOrderEvents


def checkout_service(
    settings: Settings,
    pool: AsyncConnectionPool,
    ports: CheckoutPorts,
    gateway: PaymentGateway,
    *,
    clock: Clock = SYSTEM_CLOCK,
    screen_orders: bool = True,
) -> CheckoutService:
    """Checkout over ``gateway``, its payment records, offers and (``screen_orders``)
    velocity rules on ``pool``: the same in an HTTP process and in the payments worker."""
    s = settings
    fraud = None
    if screen_orders:
        limits = VelocityLimits(
            window_s=s.fraud_window_s,
            per_customer=s.fraud_max_per_customer,
            per_card=s.fraud_max_per_card,
            per_ip=s.fraud_max_per_ip,
        )
        fraud = FraudRules(payments_repository(s, pool), limits)
    return CheckoutService(
        ports.repo,
        ports.stock,
        ports.catalog,
        gateway,
        ports.events,
        payment_hold_s=s.payment_hold_s,
        payments=payments_repository(s, pool),
        fraud=fraud,
        settle_grace_s=s.payment_settle_grace_s,
        offers=OfferBook(PollsRepository(pool), OfferCodes(s.secret_key.get_secret_value())),
        clock=clock,
    )


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
    pool = db.make_pool(settings.database_url, max_size=pool_size, name=pool_name)
    await pool.open(wait=False)
    try:
        gateway = factory.build_gateway(settings, payments_repository(settings, pool))
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


def _fields_of(ctx: ShopContext) -> dict[str, Any]:
    """A context's fields by name, to build the next context up from it (shallow: the
    pools, clients and services are shared, not copied)."""
    return {f.name: getattr(ctx, f.name) for f in fields(ctx)}


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
            pool = db.make_pool(url, max_size=2, name="admin-reports", check=False)
            await pool.open(wait=False)
            replica.append(ReportsRepository(pool))
        return replica[0]

    return on_replica
