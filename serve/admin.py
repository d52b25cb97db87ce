"""The admin API, at /api/admin: API key + TOTP, every action audited."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from actors.client import shard_handles
from actors.payments_handle import HandleGateway
from actors.pinning import PinRows, pin_sku, unpin_sku
from matchday import bootstrap
from matchday.inventory.routing import Router
from serve import presets
from serve.common import AppArgs, open_engine, settings_of


class RayPinning:
    """Pins through the shard actors (actors/pinning.py): the admin API's Pinning."""

    def __init__(self, repo: PinRows, router: Router, handles: dict[int, Any]) -> None:
        self.repo = repo
        self.router = router
        self.handles = handles

    async def pin(self, sku: str) -> int:
        return await pin_sku(self.repo, self.router, self.handles, sku)

    async def unpin(self, sku: str) -> None:
        await unpin_sku(self.repo, self.router, self.handles, sku)

    async def pins(self) -> dict[str, int]:
        return await self.repo.pins()


@serve.deployment(name="Admin", **presets.ADMIN)
@serve.ingress()
class AdminAPI:
    async def __init__(self, settings: dict[str, Any]) -> None:  # type: ignore[misc]
        s = settings_of(settings)
        # Refunds go through the Payments deployment of the orders app (admin_refunds.py).
        ctx = bootstrap.with_checkout(await open_engine(s), HandleGateway.deployed())
        self.ctx = bootstrap.with_admin(ctx)
        self.router = Router(s.shards, s.dedicated_shards)
        self.pins = RayPinning(bootstrap.engine_rows(self.ctx.pool), self.router, shard_handles(s))

    def __serve_build_asgi_app__(self) -> Any:
        from matchday.web import admin_api  # here, not above: serve/__init__.py

        return admin_api.build(self.ctx, pins=self.pins, router=self.router)

    async def __del__(self) -> None:
        await self.ctx.close()


def build_app(args: dict[str, Any]) -> Application:
    """The app builder serve_config.yaml names; ``args`` is that app's ``args:``."""
    settings = AppArgs.model_validate(args).settings
    return AdminAPI.bind(settings)  # type: ignore[attr-defined,no-any-return]
