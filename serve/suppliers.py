"""Supplier stock pushes, at /api/suppliers (ADR 0025).

An app of its own rather than routes of the admin app: its callers are suppliers' systems,
authenticated per message by an HMAC under their own secret (not an operator's session); a
front proxy can open /api/suppliers to partners and keep /api/admin internal; it scales and
sheds load apart from the operators' app; and its route is ``/api/suppliers/{supplier}/stock``
(a Serve app owns its route prefix). Levels go through the engine client like the shop's.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from serve import presets
from serve.common import AppArgs, open_engine, settings_of


@serve.deployment(name="Suppliers", **presets.SUPPLIERS)
@serve.ingress()
class SuppliersAPI:
    async def __init__(self, settings: dict[str, Any]) -> None:  # type: ignore[misc]
        self.ctx = await open_engine(settings_of(settings))

    def __serve_build_asgi_app__(self) -> Any:
        from matchday.web import suppliers_api  # here, not above: serve/__init__.py

        return suppliers_api.build(self.ctx, self.ctx.suppliers.push)

    async def __del__(self) -> None:
        await self.ctx.close()


def build_app(args: dict[str, Any]) -> Application:
    """The app builder serve_config.yaml names; ``args`` is that app's ``args:``."""
    settings = AppArgs.model_validate(args).settings
    return SuppliersAPI.bind(settings)  # type: ignore[attr-defined,no-any-return]
