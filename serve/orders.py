"""Checkout and orders, at /api/orders; pays through the Payments deployment's handle."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from actors.payments_handle import HandleGateway
from matchday.payments.fraud import FraudRules, VelocityLimits
from matchday.settings import Settings
from matchday.storage.payments_repo import PaymentsRepository
from matchday.web import orders_api
from matchday.web.context import ShopContext
from serve import presets
from serve.common import AppArgs, open_context, settings_of
from serve.payments import Payments


def configure_payments(ctx: ShopContext, settings: Settings) -> None:
    """Checkout's payment settings: the worker's grace period and the velocity rules."""
    if ctx.checkout is None:
        return
    ctx.checkout.settle_grace_s = settings.payment_settle_grace_s
    ctx.checkout.fraud = FraudRules(
        PaymentsRepository(ctx.pool),
        VelocityLimits(
            window_s=settings.fraud_window_s,
            per_customer=settings.fraud_max_per_customer,
            per_card=settings.fraud_max_per_card,
            per_ip=settings.fraud_max_per_ip,
        ),
    )


@serve.deployment(name="Orders", **presets.ORDERS)
@serve.ingress()
class OrdersAPI:
    async def __init__(self, settings: dict[str, Any], payments: Any) -> None:
        s = settings_of(settings)
        self.ctx = await open_context(s, with_stock=True, gateway=HandleGateway(payments))
        configure_payments(self.ctx, s)

    def __serve_build_asgi_app__(self) -> Any:
        return orders_api.build(self.ctx)

    async def __del__(self) -> None:
        await self.ctx.close()


def build_app(args: dict[str, Any]) -> Application:
    """The app builder serve_config.yaml names; ``args`` is that app's ``args:``."""
    settings = AppArgs.model_validate(args).settings
    return OrdersAPI.bind(settings, Payments.bind(settings))  # type: ignore[attr-defined]
