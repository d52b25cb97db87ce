"""Add-to-cart without the framework: the surge's hot route as one plain ASGI function.

``POST /carts/{cart_id}/items`` is most of what a match-day surge sends. Through FastAPI it
cost the shop replica 139 us of its own per add in-process (a bare ASGI function doing the
same work: 17 us), about 40% of it dependency resolution, on top of two middlewares that
each wrapped every request (issue 12; before/after in docs/adr/0018-lean-add-to-cart.md).

:class:`LeanFront` sits in front of the shop app's whole stack (:class:`LeanFastAPI`: before
FastAPI's own error, telemetry and body-limit layers and matchday's guards) and answers an
*ordinary* add itself: a well-formed cart id, no query string, a JSON content type, a declared
length within the body limit, no card number, a body that parses strictly (strict_json.py)
and validates as :class:`AddItem`. It then does what the FastAPI route's dependencies and
handler do, in the same order and with the same functions: the shopper token, the client's
rate limit, the Idempotency-Key, the engine call, the same JSON answer or error mapping.

Anything else, it hands to FastAPI untouched (the body it read is replayed), so every refusal
of a malformed request (413, 422, a card number, a bad header) comes from the documented
route and its middlewares, never from a second implementation of them. The FastAPI route stays
for those requests and for the OpenAPI document; both call :meth:`LeanAdd.add`. Tests send
every case to both paths (tests/integration/test_lean_add.py); an ordinary add goes over
HTTP through the ingress in tests/e2e/ingress/test_hot_add_hints.py.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from matchday.domain.errors import MatchdayError, Unavailable
from matchday.shop.carts import CartService
from matchday.waitingroom.gate import PassGate
from matchday.web.base import answer_once
from matchday.web.context import ShopContext
from matchday.web.errors import matchday_error_response, unexpected_error_response
from matchday.web.pan_guard import body_carries_pan, replaying, screen_head
from matchday.web.schemas import AddItem
from matchday.web.strict_json import loads

ADD_PATH = "/carts/{cart_id}/items"
CART_ID_PATTERN = r"^c_[a-z2-7]+$"
# Serve's request_timeout_s in serve_config.yaml, which the ingress turns off for this route.
ADD_TIMEOUT_S = 30.0
TIMED_OUT = "the add did not finish in time; retry it with the same Idempotency-Key"
# The route's path with its cart id, as FastAPI's CartId parameter accepts it (3-64 chars).
_ADD = re.compile(r"/carts/(c_[a-z2-7]{1,62})/items")
# Any cart id: what the ingress sends to the add lane (its HOT_ADD_PATH), where FastAPI
# refuses an id it does not accept as it does on the Serve port.
_ANY_ADD = re.compile(r"/carts/[^/]+/items")


def is_add_path(path: str) -> bool:
    """Whether ``path``, relative to the shop's prefix, is the add route's."""
    return _ANY_ADD.fullmatch(path) is not None


class LeanAdd:
    """Adding a line, shared by the lean path and the documented FastAPI route."""

    def __init__(self, ctx: ShopContext, carts: CartService, gate: PassGate | None = None) -> None:
        self.ctx = ctx
        self.carts = carts
        self.gate = gate  # the waiting room's pass check (ADR 0026); free for other SKUs
        self.limit = ctx.settings.max_body_bytes
        self.answered = 0  # adds the lean path answered itself (tests check it is used)

    async def add(
        self,
        key: str | None,
        path: str,
        customer: str,
        cart_id: str,
        item: AddItem,
        passes: str | None = None,
    ) -> JSONResponse:
        gate, drop = self.gate, None
        if gate is not None and gate.needs(item.sku):  # a dict lookup for SKUs in no drop
            drop = await gate.require(item.sku, passes, customer)

        async def produce(request_key: str) -> tuple[int, Any]:
            view = await self.carts.add(customer, cart_id, item.sku, item.qty, request_key)
            if drop is not None and gate is not None:
                await gate.spent(drop, customer)
            return 201, {
                "reservation_id": view.reservation_id,
                "sku": view.sku,
                "qty": view.qty,
                "status": view.status,
                "expires_at": view.expires_at,
                "expires_in_s": max(0.0, round(view.expires_at - time.time(), 1)),
            }

        body = item.model_dump()
        store = self.ctx.idempotency
        return await answer_once(store, f"add:{customer}", key, "POST", path, body, produce)

    async def shopper(self, authorization: str | None) -> str:
        """What the route's ``shopper`` dependency does: the token, then the rate limit."""
        customer = self.ctx.identity.customer(authorization)
        await self.ctx.limiter.check(f"c:{customer}")
        return customer


class LeanFront:
    """The hot route in front of ``app``: ordinary adds answered here, anything else (and an
    add that is not ordinary, its body replayed) handed to ``app`` untouched."""

    def __init__(self, app: ASGIApp, lean: LeanAdd) -> None:
        self.app = app
        self.lean = lean

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cart_id = _ordinary_add(scope, self.lean.limit)
        if cart_id is None:
            await self.app(scope, receive, send)
            return
        # The ingress turns Serve's own request timeout off for this route (a task and a
        # wait fewer per add: cluster/ingress_rules.py); this bound stands in for it.
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            async with asyncio.timeout(ADD_TIMEOUT_S):
                await self._add(scope, receive, sending, cart_id)
        except TimeoutError:
            if started:
                raise
            await matchday_error_response(Unavailable(TIMED_OUT))(scope, receive, send)

    async def _add(self, scope: Scope, receive: Receive, send: Send, cart_id: str) -> None:
        messages, body = await _read(receive, self.lean.limit)
        item = None if body is None or body_carries_pan(body) else _item(body)
        if item is None:
            await self.app(scope, replaying(messages, receive), send)
            return
        authorization = key = passes = None
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"idempotency-key" and key is None:
                key = value.decode("latin-1")
            elif name == b"x-matchday-pass" and passes is None:
                passes = value.decode("latin-1")
        self.lean.answered += 1
        try:
            customer = await self.lean.shopper(authorization)
            response = await self.lean.add(key, scope["path"], customer, cart_id, item, passes)
        except MatchdayError as exc:
            response = matchday_error_response(exc)
        except Exception as exc:
            # What FastAPI's outermost layer (ServerErrorMiddleware) does for the route: the
            # same answer from the same handler, then the exception on to the server's log.
            await unexpected_error_response(scope["method"], scope["path"], exc)(
                scope, receive, send
            )
            raise
        await response(scope, receive, send)


class LeanFastAPI(FastAPI):
    """A FastAPI app whose requests meet a :class:`LeanFront` first, once one is put there.

    A subclass, not a wrapper object: Ray Serve, the tests and the OpenAPI document see an
    ordinary FastAPI app (Serve reads its routes for metric names and its docs URL), while
    an ordinary add skips FastAPI's and Starlette's ``__call__`` and every middleware
    (issue 12 profile: the outer layers were 2-3% of the shop replica's CPU)."""

    _front: LeanFront | None = None

    def put_in_front(self, lean: LeanAdd) -> None:
        self._front = LeanFront(super().__call__, lean)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self._front
        if front is None:
            await super().__call__(scope, receive, send)
        else:
            await front(scope, receive, send)


def _ordinary_add(scope: Scope, limit: int) -> str | None:
    """The cart id of an add the lean path may answer, judged by its head; else None."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("query_string"):
        return None
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    # Relative to the mount point, as Starlette's router takes it (routing.get_route_path).
    match = _ADD.fullmatch(path, len(root) if root and path.startswith(root) else 0)
    if match is None or screen_head(scope) is not None:
        return None
    length = media = None
    for name, value in scope["headers"]:  # the first of each, as Starlette's Headers.get
        if name == b"content-length" and length is None:
            length = value
        elif name == b"content-type" and media is None:
            media = value
    if length is None or not length.isdigit() or int(length) > limit:
        return None
    if media != b"application/json" and not (media or b"").startswith(b"application/json;"):
        return None
    return match.group(1)


async def _read(receive: Receive, limit: int) -> tuple[list[Message], bytes | None]:
    """The messages received and the body, or None for the body if it is not an ordinary one
    (over the limit, or the client left)."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if size > limit:
            return messages, None
        if not message.get("more_body", False):
            break
    return messages, b"".join(m.get("body", b"") for m in messages)


def _item(body: bytes) -> AddItem | None:
    try:
        return AddItem.model_validate(loads(body))
    except (ValueError, ValidationError):  # JSONDecodeError is a ValueError
        return None


def front_route(app: FastAPI, path: str, method: str) -> None:
    """Move ``method path`` to the front of the app's routes, after building the OpenAPI
    document (so its order stays the declared one).

    Ray Serve names each request's route for its metrics by matching the app's routes in
    order (``get_asgi_route_name``, every request); the add was the ninth to be tried."""
    app.openapi()
    routes: list[BaseRoute] = app.router.routes
    for i, route in enumerate(routes):
        if getattr(route, "path", None) == path and method in (getattr(route, "methods", ()) or ()):
            routes.insert(0, routes.pop(i))
            return
    raise ValueError(f"no route {method} {path}")
