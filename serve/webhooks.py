"""Payment-provider webhooks, at /api/webhooks.

Its parts come from ``bootstrap.open_webhooks``: with Stripe configured, a router of its own
over the same accounts, built as the Payments deployment builds its own (their state lives in
PostgreSQL and at Stripe, so it needs no handle to that deployment); with the test gateway it
pays through the orders app's Payments deployment and no account has a signing secret, so
every webhook route answers 404.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from actors.client import connect_client
from actors.metrics import safe_metrics
from actors.payments_handle import HandleGateway
from matchday import bootstrap
from serve import presets
from serve.common import AppArgs, settings_of


@serve.deployment(name="Webhooks", **presets.WEBHOOKS)
@serve.ingress()
class WebhooksAPI:
    async def __init__(self, settings: dict[str, Any]) -> None:  # type: ignore[misc]
        s = settings_of(settings)
        self.parts = await bootstrap.open_webhooks(
            s, connect_client(s), test_gateway=HandleGateway.deployed, metrics=safe_metrics()
        )

    def __serve_build_asgi_app__(self) -> Any:
        from matchday.web import webhooks_api  # here, not above: serve/__init__.py

        p = self.parts
        return webhooks_api.build(p.ctx, secrets=dict(p.secrets), events=p.events)

    async def __del__(self) -> None:
        await self.parts.close()


def build_app(args: dict[str, Any]) -> Application:
    """The app builder serve_config.yaml names; ``args`` is that app's ``args:``."""
    settings = AppArgs.model_validate(args).settings
    return WebhooksAPI.bind(settings)  # type: ignore[attr-defined,no-any-return]
