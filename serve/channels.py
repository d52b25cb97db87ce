"""Marketplace channels, at /api/channels (ADR 0028).

An app of its own, like the suppliers' (ADR 0025): its callers are marketplaces'
systems authenticated by a channel API key, not shoppers or operators; a front proxy can
open /api/channels to partners and keep /api/admin internal; it scales and sheds load
apart. Reserves, commits and releases go through the engine client like the shop's.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from matchday import bootstrap
from serve import presets
from serve.common import AppArgs, open_engine, settings_of


@serve.deployment(name="Channels", **presets.CHANNELS)
@serve.ingress()
class ChannelsAPI:
    async def __init__(self, settings: dict[str, Any]) -> None:  # type: ignore[misc]
        self.ctx = await open_engine(settings_of(settings))
        self.sales = bootstrap.channel_sales(self.ctx)

    def __serve_build_asgi_app__(self) -> Any:
        from matchday.web import channels_api  # here, not above: serve/__init__.py

        return channels_api.build(self.ctx, self.sales)

    async def __del__(self) -> None:
        await self.ctx.close()


def build_app(args: dict[str, Any]) -> Application:
    """The app builder serve_config.yaml names; ``args`` is that app's ``args:``."""
    settings = AppArgs.model_validate(args).settings
    return ChannelsAPI.bind(settings)  # type: ignore[attr-defined,no-any-return]
