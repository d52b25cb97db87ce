"""Payment-provider webhooks, at /api/webhooks.

With Stripe configured the replica builds its own router over the same accounts (their state
lives in PostgreSQL and at Stripe, so it needs no handle to the Payments deployment); with the
test gateway it pays through the orders app's Payments deployment and no account has a
signing secret, so every webhook route answers 404.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from actors.payments_handle import HandleGateway
from matchday import bootstrap
from matchday.payments.factory import build_gateway
from matchday.storage.db import make_pool
from matchday.storage.payments_repo import PaymentsRepository
from matchday.web import webhooks_api
from serve import presets
from serve.common import AppArgs, open_engine, settings_of

# Webhooks are a trickle next to checkouts: Stripe retries for days, so shedding is safe.
WEBHOOKS = presets.autoscaled(min_replicas=1, max_replicas=2, target=16, ongoing=64, queued=256)


@serve.deployment(name="Webhooks", **WEBHOOKS)
@serve.ingress()
class WebhooksAPI:
    async def __init__(self, settings: dict[str, Any]) -> None:
        s = settings_of(settings)
        self.pool = make_pool(s.database_url, max_size=2, name="matchday-webhooks-gw")
        await self.pool.open(wait=False)
        payments = PaymentsRepository(self.pool)
        gateway: Any = (
            build_gateway(s, payments) if s.gateway_kind == "stripe" else HandleGateway.deployed()
        )
        self.ctx = bootstrap.with_checkout(await open_engine(s), gateway)
        self.events = bootstrap.stripe_events(self.ctx, gateway)
        self.secrets = {
            "primary": s.stripe_webhook_secret.get_secret_value(),
            "backup": s.stripe_backup_webhook_secret.get_secret_value(),
        }

    def __serve_build_asgi_app__(self) -> Any:
        return webhooks_api.build(self.ctx, secrets=self.secrets, events=self.events)

    async def __del__(self) -> None:
        await self.ctx.close()
        await self.pool.close()


def build_app(args: dict[str, Any]) -> Application:
    """The app builder serve_config.yaml names; ``args`` is that app's ``args:``."""
    settings = AppArgs.model_validate(args).settings
    return WebhooksAPI.bind(settings)  # type: ignore[attr-defined]
