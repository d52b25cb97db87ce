"""What the processes that are not plain HTTP apps run on: the webhooks app, the payments
worker, the supplier services and the reports (the shards and the event publisher:
``engine``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from matchday.bootstrap.contexts import (
    SYSTEM_CLOCK,
    CheckoutPorts,
    catalog_service,
    checkout_service,
    open_gateway,
    open_shop,
    payments_repository,
    redis_client,
    routed_gateways,
    stripe_events,
    with_checkout,
    with_engine,
)
from matchday.domain.clock import Clock
from matchday.inventory.client import InventoryClient
from matchday.metrics import NOOP, Metrics
from matchday.payments.gateway import PaymentGateway
from matchday.reports.reader import Reports
from matchday.settings import Settings
from matchday.shop.events import RedisOrderEvents
from matchday.shop.payment_events import StripeEvents
from matchday.shop.payments_worker import PaymentsWorker
from matchday.storage import db
from matchday.storage.payments_watch import PaymentWatch
from matchday.storage.reports_repo import ReportsRepository
from matchday.storage.shop_repo import ShopRepository
from matchday.web.context import (
    CheckoutContext,
    ShopContext,
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
    # Its own pool and Redis client, not an HTTP process's context: the worker needs the
    # shop's records, checkout and the payment records, none of the web's services.
    opened = AsyncExitStack()
    opened.push_async_callback(gw.close)
    try:
        redis = redis_client(settings)
        opened.push_async_callback(redis.aclose)
        pool = db.make_pool(settings.database_url, max_size=4, name="payments-worker", check=False)
        opened.push_async_callback(pool.close)
        await pool.open(wait=False)
        repo = ShopRepository(pool)
        ports = CheckoutPorts(
            repo=repo,
            stock=stock,
            catalog=catalog_service(settings, pool, redis, metrics),
            events=RedisOrderEvents(redis),
        )
        checkout = checkout_service(settings, pool, ports, gw.gateway, clock=clock)
    except BaseException:
        await opened.aclose()
        raise
    s = settings
    worker = PaymentsWorker(
        repo,
        payments_repository(s, pool),
        checkout,
        routed_gateways(gw.gateway),
        base_s=s.payment_retry_base_s,
        max_s=s.payment_retry_max_s,
        stale_s=max(s.payment_settle_grace_s, 2 * s.stripe_timeout_s),
    )
    return PaymentsWorkerParts(
        worker=worker, gateway=gw.gateway, watch=PaymentWatch(pool), close=opened.aclose
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


@asynccontextmanager
async def open_reports(settings: Settings) -> AsyncIterator[Reports]:
    """Small pools for a report run (the CLI), closed on exit: the replica's for reading when
    one is configured, the primary's for refreshing."""
    primary_pool = db.make_pool(settings.database_url, min_size=1, max_size=2, name="reports")
    await primary_pool.open()
    try:
        if not settings.reports_database_url:
            repo = ReportsRepository(primary_pool)
            yield Reports(repo, repo)
            return
        replica_pool = db.make_pool(
            settings.reports_database_url, min_size=1, max_size=2, name="reports-replica"
        )
        await replica_pool.open()
        try:
            yield Reports(ReportsRepository(replica_pool), ReportsRepository(primary_pool))
        finally:
            await replica_pool.close()
    finally:
        await primary_pool.close()
