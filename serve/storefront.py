"""The storefront deployment, at "/": the PWA's shell, assets and product pictures.

No database, Redis or engine: a replica builds the bundle once at start (deterministic, so
every replica serves the same bytes under the same names) and answers from memory. Serve
routes by longest prefix, so /api/* still reaches the API apps.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from matchday.storefront.build import bundle
from serve import presets
from serve.common import AppArgs


@serve.deployment(name="Storefront", **presets.STOREFRONT)
@serve.ingress()
class StorefrontApp:
    def __init__(self) -> None:
        self.bundle = bundle()

    def __serve_build_asgi_app__(self) -> Any:
        from matchday.web import storefront_app  # here, not above: serve/__init__.py

        return storefront_app.build(self.bundle)


def build_app(args: dict[str, Any]) -> Application:
    """The app builder serve_config.yaml names; settings (if any) are accepted and unused."""
    AppArgs.model_validate(args)
    return StorefrontApp.bind()  # type: ignore[attr-defined,no-any-return]
