"""The composition root: every pool, client, repository and service a process uses is built
here, from :class:`Settings` and the ports a caller injects (the inventory engine, a payment
gateway, a clock, a metrics recorder), and nowhere else (ADR 0029). Its modules:
``contexts`` (what the apps run on), ``processes`` (the webhooks app, the workers, the
reports), ``engine`` (the shards, the publisher) and ``operators`` (what the CLI's commands
open). Each is loaded on the first use of one of its names, below.

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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from matchday.bootstrap.engine import (
        PublisherParts,
        open_publisher,
        open_shard_core,
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
        WebhooksParts,
        open_payments_worker,
        open_reports,
        open_webhooks,
    )

# Each name's module, loaded on the name's first use (PEP 562), not all at import: a shard or
# the publisher needs ``engine`` alone, and the apps' modules (FastAPI, the gateways, the
# supplier services) cost each such process ~1.2 s of CPU at start (``engine``'s docstring).
_HOMES = {
    "admin_auth": "operators",
    "admin_reports": "contexts",
    "audit_log": "operators",
    "auto_config": "contexts",
    "channel_admin": "operators",
    "channel_sales": "contexts",
    "drop_admin": "operators",
    "engine_rows": "operators",
    "GatewayParts": "contexts",
    "open_gateway": "contexts",
    "open_payments_worker": "processes",
    "open_publisher": "engine",
    "open_reports": "processes",
    "open_shard_core": "engine",
    "open_shop": "contexts",
    "open_webhooks": "processes",
    "operator_pool": "operators",
    "operator_redis": "operators",
    "payments_repository": "contexts",
    "PaymentsWorkerParts": "processes",
    "PublisherParts": "engine",
    "rate_source": "contexts",
    "redis_client": "contexts",
    "routed_gateways": "contexts",
    "seed_demo": "operators",
    "stripe_events": "contexts",
    "supplier_services": "contexts",
    "supplier_tools": "operators",
    "SupplierTools": "operators",
    "SYSTEM_CLOCK": "contexts",
    "vote_drain": "contexts",
    "waiting_room": "contexts",
    "WebhooksParts": "processes",
    "with_admin": "contexts",
    "with_checkout": "contexts",
    "with_engine": "contexts",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # once: later uses are plain attribute reads
    return value


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
