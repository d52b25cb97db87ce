"""Sessions and carts, at /api/shop: the add-to-cart hot path."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from serve import presets
from serve.common import AppArgs, open_engine, settings_of


@serve.deployment(name="Shop", **presets.SHOP)
@serve.ingress()
class ShopAPI:
    async def __init__(self, settings: dict[str, Any]) -> None:  # type: ignore[misc]
        self.ctx = await open_engine(settings_of(settings))

    def __serve_build_asgi_app__(self) -> Any:
        from matchday.web import shop_api  # here, not above: serve/__init__.py

        return shop_api.build(self.ctx)

    async def __del__(self) -> None:
        await self.ctx.close()


def build_app(args: dict[str, Any]) -> Application:
    """The app builder serve_config.yaml names; ``args`` is that app's ``args:``."""
    settings = AppArgs.model_validate(args).settings
    return ShopAPI.bind(settings)  # type: ignore[attr-defined,no-any-return]
