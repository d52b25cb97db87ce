"""Live polls, at /api/polls. Each replica also drains the votes stream into PostgreSQL
(write-behind, ADR 0013) as one consumer of the group; it needs no inventory engine."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ray import serve
from ray.serve import Application

from matchday import bootstrap
from serve import presets
from serve.common import AppArgs, open_shop, settings_of


@serve.deployment(name="Polls", **presets.POLLS)
@serve.ingress()
class PollsAPI:
    async def __init__(self, settings: dict[str, Any]) -> None:  # type: ignore[misc]
        self.ctx = await open_shop(settings_of(settings))
        drain = bootstrap.vote_drain(self.ctx)
        self._drain = asyncio.get_running_loop().create_task(drain.run())

    def __serve_build_asgi_app__(self) -> Any:
        from matchday.web import polls_api  # here, not above: serve/__init__.py

        return polls_api.build(self.ctx)

    async def __del__(self) -> None:
        self._drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._drain
        await self.ctx.close()


def build_app(args: dict[str, Any]) -> Application:
    """The app builder serve_config.yaml names; ``args`` is that app's ``args:``."""
    settings = AppArgs.model_validate(args).settings
    return PollsAPI.bind(settings)  # type: ignore[attr-defined,no-any-return]
