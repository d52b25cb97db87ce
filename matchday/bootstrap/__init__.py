"""The composition root: every pool, client, repository and service a process uses is built
here, from :class:`Settings` and the ports a caller injects (the inventory engine, a payment
gateway, a clock, a metrics recorder), and nowhere else (ADR 0029). Its modules:
``contexts`` (what the apps run on), ``processes`` (the webhooks app, the workers, the shards,
the publisher, the reports) and ``operators`` (what the CLI's commands open).

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

from matchday.bootstrap.contexts import (
    SYSTEM_CLOCK,
    GatewayParts,
    admin_reports,
    auto_config,
    channel_sales,
    open_gateway,
    open_shop,
    payments_repository,
    rate_source,
    redis_client,
    routed_gateways,
    stripe_events,
    supplier_services,
    vote_drain,
    waiting_room,
    with_admin,
    with_checkout,
    with_engine,
)
from matchday.bootstrap.operators import (
    SupplierTools,
    admin_auth,
    audit_log,
    channel_admin,
    drop_admin,
    engine_rows,
    operator_pool,
    operator_redis,
    seed_demo,
    supplier_tools,
)
from matchday.bootstrap.processes import (
    PaymentsWorkerParts,
    PublisherParts,
    WebhooksParts,
    open_payments_worker,
    open_publisher,
    open_reports,
    open_shard_core,
    open_webhooks,
)

__all__ = [
    "SYSTEM_CLOCK",
    "GatewayParts",
    "PaymentsWorkerParts",
    "PublisherParts",
    "SupplierTools",
    "WebhooksParts",
    "admin_auth",
    "admin_reports",
    "audit_log",
    "auto_config",
    "channel_admin",
    "channel_sales",
    "drop_admin",
    "engine_rows",
    "open_gateway",
    "open_payments_worker",
    "open_publisher",
    "open_reports",
    "open_shard_core",
    "open_shop",
    "open_webhooks",
    "operator_pool",
    "operator_redis",
    "payments_repository",
    "rate_source",
    "redis_client",
    "routed_gateways",
    "seed_demo",
    "stripe_events",
    "supplier_services",
    "supplier_tools",
    "vote_drain",
    "waiting_room",
    "with_admin",
    "with_checkout",
    "with_engine",
]
