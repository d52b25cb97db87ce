"""Checkout and orders, at /api/orders; pays through the Payments deployment's handle."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from actors.payments_handle import HandleGateway
from matchday import bootstrap
from serve import presets
from serve.common import AppArgs, open_engine, settings_of
from serve.payments import Payments


@serve.deployment(name="Orders", **presets.ORDERS)
@serve.ingress()
class OrdersAPI:
    async def __init__(self, settings: dict[str, Any], payments: Any) -> None:  # type: ignore[misc]
        s = settings_of(settings)
        ctx = await open_engine(s)
        gateway = HandleGateway(payments, fingerprints=s.gateway_kind != "test")
        self.ctx = bootstrap.with_checkout(ctx, gateway)

    def __serve_build_asgi_app__(self) -> Any:
        from matchday.web import orders_api  # here, not above: serve/__init__.py

        return orders_api.build(self.ctx)

    async def __del__(self) -> None:
        await self.ctx.close()


def build_app(args: dict[str, Any]) -> Application:
    """The app builder serve_config.yaml names; ``args`` is that app's ``args:``."""
    settings = AppArgs.model_validate(args).settings
    payments = Payments.bind(settings)  # type: ignore[attr-defined]
    return OrdersAPI.bind(settings, payments)  # type: ignore[attr-defined,no-any-return]
