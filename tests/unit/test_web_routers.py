"""base.router and base.include: a resource's routes declared on a router behave, and are
documented, exactly as routes declared on the app itself."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Query
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.responses import PlainTextResponse

from matchday.web.base import include, make_app, router
from matchday.web.schemas import ErrorBody
from matchday.web.strict_json import StrictJSONRoute

RESPONSES: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "None"}}


class ItemIn(BaseModel):
    qty: int


async def _ready() -> dict[str, str]:
    return {}


def _app() -> FastAPI:
    return make_app("t", "t", ready=_ready, max_body_bytes=1024)


def _declare(on: FastAPI | APIRouter, *, tags: bool) -> None:
    """Two routes, with the tags and responses on each route (or on the router)."""
    each: dict[str, Any] = {"responses": RESPONSES, "tags": ["items"]} if tags else {}

    @on.post("/items", status_code=201, **each)
    async def add_item(body: ItemIn) -> dict[str, int]:
        """Add one."""
        return {"qty": body.qty}

    @on.get("/items/{item_id}", **each)
    async def get_item(item_id: str, limit: Annotated[int, Query(ge=1)] = 1) -> dict[str, str]:
        return {"item_id": item_id}


def _on_the_app() -> FastAPI:
    app = _app()
    _declare(app, tags=True)
    return app


def _through_a_router() -> FastAPI:
    app = _app()
    items = router(responses=RESPONSES, tags=["items"])
    _declare(items, tags=False)
    include(app, items)
    return app


def test_included_routes_are_documented_as_the_apps_own() -> None:
    declared, included = _on_the_app(), _through_a_router()
    assert included.openapi() == declared.openapi()
    ops = included.openapi()["paths"]["/items"]["post"]
    assert ops["operationId"] == "add_item_items_post"
    assert set(ops["responses"]) == {"201", "404", "422", "429", "503"}  # the app's too


def test_included_routes_are_flat_strict_routes_in_declared_order() -> None:
    app = _through_a_router()
    routes = [r for r in app.routes if isinstance(r, APIRoute)]
    assert [r.path for r in routes] == ["/healthz", "/readyz", "/items", "/items/{item_id}"]
    assert all(type(r) is StrictJSONRoute for r in routes[2:])
    assert len(app.routes) == len(_on_the_app().routes)


async def test_included_routes_answer_as_declared_ones() -> None:
    for app in (_on_the_app(), _through_a_router()):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ok = await client.post("/items", json={"qty": 2})
            assert (ok.status_code, ok.json()) == (201, {"qty": 2})
            twice = await client.post(
                "/items",
                content=b'{"qty": 1, "qty": 2}',
                headers={"content-type": "application/json"},
            )
            assert twice.status_code == 422  # strict JSON: a duplicate key is refused
            assert twice.json()["code"] == "invalid_input"
            bad = await client.get("/items/x", params={"limit": 0})
            assert bad.status_code == 422 and bad.json()["code"] == "invalid_input"


def test_a_router_with_a_route_that_is_not_an_api_route_is_refused() -> None:
    plain = APIRouter()
    plain.add_route("/text", lambda request: PlainTextResponse("x"))
    with pytest.raises(TypeError, match="only API routes"):
        include(_app(), plain)
