"""Every JSON route of every app in matchday/web answers a declared response model (issue 14):
its OpenAPI document says what the answer is, and FastAPI (or the route, for an answer that
goes through the idempotency store) holds the answer to it.

A ``dict[str, Any]`` return annotation is not one: FastAPI accepts it as a response model,
but it documents nothing and lets any key through. Streams and files are not JSON; they are
listed below, each with why, and the list must not go stale.
"""

from __future__ import annotations

import dataclasses
from typing import Any, get_args, get_origin
from unittest.mock import MagicMock

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.responses import StreamingResponse

from matchday.settings import Settings
from matchday.web import (
    admin_api,
    catalog_api,
    channels_api,
    orders_api,
    polls_api,
    shop_api,
    storefront_app,
    suppliers_api,
    webhooks_api,
)
from matchday.web.base import make_app

# (app, path): routes that answer no JSON body on success, so have no response model.
NOT_JSON: dict[tuple[str, str], str] = {
    # Server-sent events (text/event-stream), documented as such on the route.
    ("orders", "/{order_id}/events"): "SSE: an order's status changes",
    ("polls", "/{poll_id}/events"): "SSE: a poll's live results",
    ("shop", "/drops/{drop_id}/events"): "SSE: a fan's place in a drop's queue",
    # The storefront serves files (no OpenAPI document); its one JSON answer is a 404 error.
    ("storefront", "/assets/{name}"): "file: a hashed asset",
    ("storefront", "/sw.js"): "file: the service worker",
    ("storefront", "/manifest.webmanifest"): "file: the web app manifest",
    ("storefront", "/static/img/{name}"): "file: a product image",
    ("storefront", "/api/{rest:path}"): "only ever a 404 in the error shape",
    ("storefront", "/{path:path}"): "file: the app shell (a program gets a 404 error)",
}
SSE = {key for key, why in NOT_JSON.items() if why.startswith("SSE")}


def _ctx() -> Any:
    """A context whose services are never called: building an app only wires them."""
    ctx = MagicMock()
    ctx.settings = Settings()
    return ctx


def _apps() -> dict[str, FastAPI]:
    return {
        "admin": admin_api.build(_ctx(), pins=MagicMock(), router=MagicMock()),
        "catalog": catalog_api.build(_ctx()),
        "channels": channels_api.build(_ctx(), MagicMock()),
        "orders": orders_api.build(_ctx()),
        "polls": polls_api.build(_ctx()),
        "shop": shop_api.build(_ctx()),
        "storefront": storefront_app.build(),
        "suppliers": suppliers_api.build(_ctx(), MagicMock()),
        "webhooks": webhooks_api.build(_ctx(), secrets={}, events=None),
    }


def is_model(annotation: Any) -> bool:
    """A pydantic model, a dataclass (FastAPI validates it through pydantic the same way), or
    a list of either."""
    if isinstance(annotation, type):
        return issubclass(annotation, BaseModel) or dataclasses.is_dataclass(annotation)
    args = get_args(annotation)
    return get_origin(annotation) is list and len(args) == 1 and is_model(args[0])


def without_model(apps: dict[str, FastAPI]) -> list[tuple[str, str, str]]:
    """(app, path, route name) of each API route without a response model."""
    return [
        (name, route.path, route.name)
        for name, app in apps.items()
        for route in app.routes
        if isinstance(route, APIRoute) and not is_model(route.response_model)
    ]


@pytest.fixture(scope="module")
def apps() -> dict[str, FastAPI]:
    return _apps()


def test_every_json_route_declares_a_response_model(apps: dict[str, FastAPI]) -> None:
    missing = [
        f"{name} {path} ({route})"
        for name, path, route in without_model(apps)
        if (name, path) not in NOT_JSON
    ]
    assert missing == [], "declare response_model= (a pydantic model) on:\n" + "\n".join(missing)


def test_the_routes_let_off_exist_and_still_answer_no_json(apps: dict[str, FastAPI]) -> None:
    found = {(name, path) for name, path, _ in without_model(apps)}
    assert sorted(set(NOT_JSON) - found) == [], "stale entries in NOT_JSON"
    for name, path in SSE:
        (route,) = [r for r in apps[name].routes if getattr(r, "path", None) == path]
        assert isinstance(route, APIRoute) and route.response_class is StreamingResponse


def test_the_check_catches_what_it_is_for() -> None:
    app = make_app("t", "t", ready=MagicMock(), max_body_bytes=1024)

    class Out(BaseModel):
        x: int

    @app.get("/loose")
    async def loose() -> dict[str, Any]:
        return {}

    @app.get("/typed", response_model=list[Out])
    async def typed() -> list[Out]:
        return []

    assert without_model({"t": app}) == [("t", "/loose", "loose")]
    assert not is_model(Any) and not is_model(dict[str, int]) and is_model(list[Out])


@pytest.mark.parametrize(
    ("app", "path", "statuses"),
    [
        ("polls", "/{poll_id}/votes", {"200", "201"}),  # 200: a repeat of the same vote
        ("admin", "/suppliers/{supplier}/syncs", {"200", "202"}),  # 200: already queued
    ],
)
def test_a_route_that_answers_a_repeat_differently_documents_both_statuses(
    app: str, path: str, statuses: set[str]
) -> None:
    documented = _apps()[app].openapi()["paths"][path]["post"]["responses"]
    assert statuses <= set(documented)
    assert all("$ref" in str(documented[s]) for s in statuses)  # both with the body's model
