"""The catalogue deployment, at /api/catalog."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from serve import presets
from serve.common import AppArgs, open_shop, settings_of


@serve.deployment(name="Catalog", **presets.CATALOG)
@serve.ingress()
class CatalogAPI:
    async def __init__(self, settings: dict[str, Any]) -> None:  # type: ignore[misc]
        self.ctx = await open_shop(settings_of(settings))

    def __serve_build_asgi_app__(self) -> Any:
        from matchday.web import catalog_api  # here, not above: serve/__init__.py

        return catalog_api.build(self.ctx)

    async def __del__(self) -> None:
        await self.ctx.close()


def build_app(args: dict[str, Any]) -> Application:
    """The app builder serve_config.yaml names; ``args`` is that app's ``args:``."""
    settings = AppArgs.model_validate(args).settings
    return CatalogAPI.bind(settings)  # type: ignore[attr-defined,no-any-return]
