"""What every matchday deployment does at start: its settings, and its context opened by
matchday.bootstrap with what only Ray can give (an engine client over the shard actors,
Ray's metrics)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from actors.client import connect_client
from actors.metrics import safe_metrics
from matchday import bootstrap
from matchday.settings import Settings

if TYPE_CHECKING:  # a build task imports this module only for AppArgs: serve/__init__.py
    from matchday.web.context import EngineContext, ShopContext


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


async def open_shop(settings: Settings) -> ShopContext:
    """The context of an app without the inventory engine (catalogue, polls)."""
    return await bootstrap.open_shop(settings, metrics=safe_metrics())


async def open_engine(settings: Settings) -> EngineContext:
    """The context of an app with the engine, over this replica's client of the shards."""
    return bootstrap.with_engine(await open_shop(settings), connect_client(settings))
