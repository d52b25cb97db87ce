"""What every matchday HTTP app shares: errors, body limits, health, readiness, rate limits."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from matchday.domain.ids import check_key
from matchday.web import errors
from matchday.web.errors import ERROR_SCHEMA, error_response
from matchday.web.idempotency import IdempotencyStore, fingerprint
from matchday.web.pan_guard import PanGuard
from matchday.web.schemas import ErrorBody, Health
from matchday.web.strict_json import StrictJSONRoute

Ready = Callable[[], Awaitable[dict[str, str]]]

# Documented on every route: what a client must be ready for besides success.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "Invalid input"},
    429: {"model": ErrorBody, "description": "Rate limited; see Retry-After"},
    503: {"model": ErrorBody, "description": "Busy or a dependency is down; retry"},
}


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413 before a handler buffers them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await self._refuse(scope, receive, send)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, "payload_too_large", f"body over {self.limit} bytes")
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def make_app(
    title: str,
    description: str,
    *,
    ready: Ready,
    max_body_bytes: int,
    app_class: type[FastAPI] = FastAPI,
) -> FastAPI:
    app = app_class(
        # FastAPI's native OpenTelemetry is off: matchday's metrics go through Ray, and with
        # it on FastAPI looks up three global providers (environment reads) on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title=title,
        description=description,
        version="1.0.0",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        responses=COMMON_RESPONSES,
    )
    # Every JSON body is parsed strictly: UTF-8 only, no duplicate keys (strict_json.py).
    app.router.route_class = StrictJSONRoute
    errors.install(app)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    # Outermost: a card number in any request to any app is refused before anything (a
    # handler, a log line, the idempotency store) sees it (ADR 0008).
    app.add_middleware(PanGuard, limit=max_body_bytes)

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["health"])
    async def readyz() -> Any:
        """Readiness: PostgreSQL and Redis (and the engine, where used) answer."""
        checks = await ready()
        ok = all(v == "ok" for v in checks.values())
        body = Health(status="ok" if ok else "unavailable", checks=checks).model_dump()
        return JSONResponse(body, status_code=200 if ok else 503)

    _declare_error_schema(app)
    return app


def router(**options: Any) -> APIRouter:
    """One resource's routes (``options``: the ``APIRouter``'s, e.g. tags, responses); its
    JSON bodies are parsed strictly, as the app's own routes' are."""
    return APIRouter(route_class=StrictJSONRoute, **options)


def include(app: FastAPI, *routers: APIRouter) -> None:
    """Add the routers' routes to ``app`` as routes of its own, in order: what
    ``app.include_router`` did before FastAPI 0.137.

    Since 0.137 ``include_router`` keeps each router as a node that every request walks (its
    routes' effective contexts, a version check, a second match): 20-27 us more CPU a request
    (+7-9%) on a 12-route app in four routers (2026-12-02, 2-core machine, a bare GET), on
    every app's every route. Copied, a route costs what a route declared on the app costs,
    and ``app.routes`` stays the flat list Ray Serve names its metrics from (and
    ``fast_add.front_route`` reorders)."""
    for one in routers:
        for route in one.routes:
            if not isinstance(route, APIRoute):
                raise TypeError(f"only API routes can be included, not {route!r}")
            app.router.add_api_route(
                route.path,
                route.endpoint,
                response_model=route.response_model,
                status_code=route.status_code,
                tags=route.tags,
                dependencies=route.dependencies,
                summary=route.summary,
                description=route.description,
                response_description=route.response_description,
                responses=route.responses,
                deprecated=route.deprecated,
                methods=route.methods,
                operation_id=route.operation_id,
                response_model_include=route.response_model_include,
                response_model_exclude=route.response_model_exclude,
                response_model_by_alias=route.response_model_by_alias,
                response_model_exclude_unset=route.response_model_exclude_unset,
                response_model_exclude_defaults=route.response_model_exclude_defaults,
                response_model_exclude_none=route.response_model_exclude_none,
                include_in_schema=route.include_in_schema,
                response_class=route.response_class,
                name=route.name,
                route_class_override=type(route),
                callbacks=route.callbacks,
                openapi_extra=route.openapi_extra,
                generate_unique_id_function=route.generate_unique_id_function,
                strict_content_type=route.strict_content_type,
                max_body_size=route.max_body_size,
            )


def _declare_error_schema(app: FastAPI) -> None:
    original = app.openapi

    def openapi() -> dict[str, Any]:
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


Produce = Callable[[str], Awaitable[tuple[int, Any]]]


def body_of(model: type[BaseModel], data: Any) -> dict[str, Any]:
    """``data`` (a feature's dict) as ``model`` answers it, for a route whose answer goes
    through the idempotency store (``idempotent``, the admin gate) and so is not FastAPI's
    to check: validated as FastAPI validates a returned value (a field missing or of another
    type is an error, not a different answer; a key the model lacks is left out) and dumped
    to JSON types."""
    return model.model_validate(data).model_dump(mode="json")


async def idempotent(
    request: Request, store: IdempotencyStore, scope: str, body: Any, produce: Produce
) -> JSONResponse:
    """Run ``produce(key)`` once per Idempotency-Key; without one, a fresh key each time."""
    return await answer_once(
        store,
        scope,
        request.headers.get("idempotency-key"),
        request.method,
        request.url.path,
        body,
        produce,
    )


async def answer_once(
    store: IdempotencyStore,
    scope: str,
    key: str | None,
    method: str,
    path: str,
    body: Any,
    produce: Produce,
) -> JSONResponse:
    """:func:`idempotent` without a Request object (the lean add-to-cart route's)."""
    if key is None:
        status, payload = await produce(fresh_key())
        return JSONResponse(payload, status_code=status)
    usable = store.usable(check_key(key))
    fp = fingerprint(method, path, body)
    status, payload, replayed = await store.run(scope, usable, fp, lambda: produce(usable))
    if isinstance(payload, dict) and "__error__" in payload:
        code, message = payload["__error__"]
        response = error_response(status, code, message)
    else:
        response = JSONResponse(payload, status_code=status)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


# Hex digits 0-9 shifted to g-p: no digit at all, so never a card-number-like run.
_NO_DIGITS = str.maketrans("0123456789", "ghijklmnop")


def fresh_key() -> str:
    """A key (120 random bits) for a request sent without one. Not uuid4 hex: a hex id has a
    Luhn-valid 13-digit run one time in 500, and these end up in engine request ids (the
    journal). Not base32 either: base64.b32encode is pure Python, the add's costliest call."""
    return "k_" + secrets.token_hex(15).translate(_NO_DIGITS)
