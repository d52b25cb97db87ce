"""The storefront over HTTP (Serve route "/"): the PWA's shell, its assets and product pictures.

Content-hashed assets are cached for a year (``immutable``); the shell, ``/sw.js`` and the
manifest are revalidated on every load (``no-cache`` + ETag, so a repeat visit costs a 304).
Every file is precompressed once at startup and sent as br or gzip by Accept-Encoding. Paths
under /api/ are never answered with the shell: Serve routes them to the API apps by longest
prefix, and one that reaches this app (an app not deployed) is a plain JSON 404.
"""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from matchday.storefront.build import Asset, Bundle, bundle, image
from matchday.web import errors
from matchday.web.errors import error_response
from matchday.web.schemas import Health

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# No inline script or style anywhere in the app: everything comes from this origin's files.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; manifest-src 'self'; worker-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
APP_PATH = re.compile(
    r"^/(p/[a-z0-9][a-z0-9-]{0,63}|cart|checkout|orders/o_[a-z2-7]{1,62}|queue/d_[a-z2-7]{16})?$"
)
IMAGE_NAME = re.compile(r"^([a-z0-9][a-z0-9-]{0,63})\.svg$")
GET = ["GET", "HEAD"]


class SecurityHeaders:
    """The same security headers on every answer, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


def _accepted(header: str) -> dict[str, float]:
    """Content codings and their q-values from an Accept-Encoding header."""
    accepted: dict[str, float] = {}
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        match = re.search(r"q=([0-9.]+)", params)
        if match:
            try:
                q = float(match.group(1))
            except ValueError:
                q = 0.0
        if name:
            accepted[name.strip().lower()] = q
    return accepted


def negotiate(header: str, asset: Asset) -> tuple[str | None, bytes]:
    accepted = _accepted(header)
    star = accepted.get("*", 0.0)
    for coding, body in (("br", asset.br), ("gzip", asset.gzip)):
        if body is not None and accepted.get(coding, star) > 0:
            return coding, body
    return None, asset.body


def _etag(asset: Asset, coding: str | None) -> str:
    return asset.etag if coding is None else f'{asset.etag[:-1]}-{coding}"'


def _not_modified(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags


def serve_asset(request: Request, asset: Asset, status: int = 200) -> Response:
    coding, body = negotiate(request.headers.get("accept-encoding", ""), asset)
    etag = _etag(asset, coding)
    headers = {
        "Cache-Control": IMMUTABLE if asset.immutable else REVALIDATE,
        "ETag": etag,
        "Vary": "Accept-Encoding",
    }
    if status == 200 and _not_modified(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if coding:
        headers["Content-Encoding"] = coding
    return Response(body, status_code=status, headers=headers, media_type=asset.content_type)


def not_found(what: str) -> JSONResponse:
    return error_response(404, "not_found", what)


def build(built: Bundle | None = None) -> FastAPI:
    files = built or bundle()
    app = FastAPI(
        title="matchday storefront",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    errors.install(app)
    app.add_middleware(SecurityHeaders)
    shell = files.assets["/"]

    @app.get("/healthz", response_model=Health, include_in_schema=False)
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, include_in_schema=False)
    async def readyz() -> Health:
        # Nothing to wait for: the bundle is in memory before the first request.
        return Health(status="ok", checks={"bundle": files.version})

    @app.api_route("/assets/{name}", methods=GET)
    async def asset(request: Request, name: str) -> Response:
        found = files.get(f"/assets/{name}")
        return serve_asset(request, found) if found else not_found(f"no asset {name}")

    @app.api_route("/sw.js", methods=GET)
    async def service_worker(request: Request) -> Response:
        return serve_asset(request, files.assets["/sw.js"])

    @app.api_route("/manifest.webmanifest", methods=GET)
    async def manifest(request: Request) -> Response:
        return serve_asset(request, files.assets["/manifest.webmanifest"])

    @app.api_route("/static/img/{name}", methods=GET)
    async def product_image(request: Request, name: str) -> Response:
        match = IMAGE_NAME.match(name)
        picture = image(match.group(1)) if match else None
        return serve_asset(request, picture) if picture else not_found(f"no image {name}")

    @app.api_route("/api/{rest:path}", methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"])
    async def no_api(rest: str) -> JSONResponse:
        return not_found(f"no API answers /api/{rest}")

    @app.api_route("/{path:path}", methods=GET)
    async def page(request: Request, path: str) -> Response:
        if APP_PATH.match(f"/{path}"):
            return serve_asset(request, shell)
        # A person who mistyped a link gets the app (its own "not found" page), a program JSON.
        if "text/html" in request.headers.get("accept", ""):
            return serve_asset(request, shell, status=404)
        return not_found(f"no page /{path}")

    return app
