"""What every matchday deployment does at start: settings, the engine client, the context."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from actors.metrics import safe_metrics
from matchday.payments.gateway import PaymentGateway
from matchday.settings import Settings
from matchday.web.context import ShopContext


class AppArgs(BaseModel):
    """Arguments of every app builder (``args:`` in serve_config.yaml).

    ``settings`` overrides ``MATCHDAY_*`` environment variables, which is how secrets and
    server URLs reach replicas in production (never through this file: Serve shows an app's
    config on the dashboard).
    """

    model_config = ConfigDict(extra="forbid")
    settings: dict[str, Any] = {}


def settings_of(args: dict[str, Any]) -> Settings:
    return Settings(**args)


async def open_context(
    settings: Settings, *, with_stock: bool, gateway: PaymentGateway | None = None
) -> ShopContext:
    stock = None
    if with_stock:
        from actors.client import connect_client

        stock = connect_client(settings)
    ctx = await ShopContext.open(settings, stock=stock, gateway=gateway)
    ctx.metrics = ctx.catalog.metrics = safe_metrics()
    return ctx
