"""Sessions and carts, at /api/shop: the add-to-cart hot path."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ray import serve
from ray.serve import Application

from serve import presets
from serve.common import AppArgs, open_engine, settings_of

if TYPE_CHECKING:
    from matchday.web.add_lane import AddLane, LaneHooks


@serve.deployment(name="Shop", **presets.SHOP)
@serve.ingress()
class ShopAPI:
    async def __init__(self, settings: dict[str, Any]) -> None:  # type: ignore[misc]
        self.lane: AddLane | None = None
        self.shop_app: Any = None  # not ``app``: Serve's ingress wrapper has that name
        self.ctx = await open_engine(settings_of(settings))

    def __serve_build_asgi_app__(self) -> Any:
        from matchday.web import shop_api  # here, not above: serve/__init__.py

        self.shop_app = shop_api.build(self.ctx)
        return self.shop_app

    async def open_add_lane(
        self, *, host: str, port: int, root_path: str, limit: int, hooks: LaneHooks
    ) -> None:
        """The add lane beside Serve's own server (ADR 0033); the worker setup hook calls it
        once that server listens, with its host, a port at a fixed offset from its port, and
        the replica's counters."""
        from matchday.web.add_lane import AddLane, trusted_peers
        from matchday.web.fast_add import is_add_path

        settings = self.ctx.settings
        if not settings.add_lane or settings.ingress != "haproxy":  # nothing routes to it
            return
        lane = AddLane(
            self.shop_app,
            accepts=is_add_path,
            root_path=root_path,
            max_body=settings.max_body_bytes,
            max_in_flight=limit,
            trusted=trusted_peers(os.environ.get("FORWARDED_ALLOW_IPS")),
            hooks=hooks,
        )
        await lane.start(host, port)
        self.lane = lane

    async def __del__(self) -> None:
        if self.lane is not None:
            await self.lane.close()
        await self.ctx.close()


def build_app(args: dict[str, Any]) -> Application:
    """The app builder serve_config.yaml names; ``args`` is that app's ``args:``."""
    settings = AppArgs.model_validate(args).settings
    return ShopAPI.bind(settings)  # type: ignore[attr-defined,no-any-return]
