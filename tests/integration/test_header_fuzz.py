"""Any byte sequence in any header gives a clear 4xx, never a 500 (issue 13.1).

Every app (shop, orders, catalogue, polls, admin, webhooks, storefront) in-process on real
PostgreSQL, Redis and shard core. Two sweeps:

- depth: valid requests that reach each header parser (shopper tokens, admin sessions,
  Idempotency-Key, Stripe-Signature, Last-Event-ID, content types, conditional GETs), with
  one header at a time replaced by malformed, non-ASCII, NUL and random bytes;
- breadth: every route of every app's OpenAPI document with its path parameters filled,
  under malformed credentials and keys.

Each answer must be below 500 and, when an error, matchday's JSON error shape. Over real
HTTP through the ingress: tests/e2e/test_lean_add_http.py.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import pytest

from matchday import bootstrap
from matchday.settings import Settings
from matchday.shop.payment_events import StripeEvents
from matchday.storefront.build import bundle
from matchday.web import channels_api, storefront_app, suppliers_api, webhooks_api
from tests.integration.asgi_raw import Answer, Headers, call
from tests.integration.test_polls_api import Polls, open_polls

pytestmark = pytest.mark.integration

HEADERS = [
    b"authorization", b"idempotency-key", b"content-type", b"content-length", b"accept",
    b"accept-encoding", b"if-none-match", b"last-event-id", b"stripe-signature",
    b"x-forwarded-for", b"forwarded", b"cookie", b"user-agent", b"origin", b"range",
    b"host", b"x-request-id", b"transfer-encoding", b"expect",
]  # fmt: skip


def bad_values(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    fixed = [
        b"Bearer u_abc.\xe9", b"Bearer \xe9", b"\x00", b"a\x00b", b"\xff\xfe\xfd", b"\xc3\xa9",
        b"\xb2", b"\xb9\xb2\xb3", b"9" * 40, b"", b" ", b"\t", b"%00", b"a" * 8000,
        b"Bearer " + b"\xe9" * 60, b"t=\xe9,v1=\xe9", b"t=1,v1=" + b"\xe9" * 64, b"\r\nx: y",
    ]  # fmt: skip
    randoms = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) for _ in range(6)]
    return fixed + randoms


@dataclass
class Template:
    app: str
    method: str
    path: str
    headers: Headers
    body: bytes = b""
    query: bytes = b""
    refused: bool = False  # a valid request refused on purpose (a wrong key, a bad signature)


@dataclass
class Apps:
    polls: Polls
    apps: dict[str, tuple[Any, str]]  # name -> (ASGI app, root path)
    templates: list[Template]
    fill: dict[str, str]  # path parameter -> a real value


@pytest.fixture
async def apps(settings: Settings) -> AsyncIterator[Apps]:
    async with open_polls(settings) as polls:
        stack = polls.admin.stack
        ctx = stack.ctx
        # The signature is checked before the events object is used: a stand-in suffices to
        # reach Stripe-Signature's parser.
        hooks = webhooks_api.build(
            ctx, secrets={"primary": "whsec_fuzz"}, events=cast(StripeEvents, object())
        )
        (sku,) = await stack.product(stock=100_000)
        auth = await stack.session()
        token = auth["Authorization"].encode()
        cart = await stack.cart(auth)
        quoted = await stack.cart(auth)  # the templates below empty `cart` again and again
        r = await stack.shop.post(f"/carts/{quoted}/items", json={"sku": sku}, headers=auth)
        assert r.status_code == 201, r.text
        paid_cart = await stack.cart(auth)
        r = await stack.shop.post(f"/carts/{paid_cart}/items", json={"sku": sku}, headers=auth)
        assert r.status_code == 201, r.text
        r = await stack.orders.post(
            "/", json={"cart_id": paid_cart, "payment_token": "pm_card_visa"}, headers=auth
        )
        assert r.status_code == 201 and r.json()["status"] == "paid", r.text
        order = r.json()["order_id"]
        open_poll = (await polls.create())["poll_id"]
        session = polls.session["Authorization"].encode()
        sales = bootstrap.channel_sales(ctx)
        apps = {
            "shop": (stack.shop._transport.app, "/api/shop"),  # type: ignore[attr-defined]
            "orders": (stack.orders._transport.app, "/api/orders"),  # type: ignore[attr-defined]
            "catalog": (stack.catalog._transport.app, "/api/catalog"),  # type: ignore[attr-defined]
            "polls": (polls.http._transport.app, "/api/polls"),  # type: ignore[attr-defined]
            "admin": (polls.admin.http._transport.app, "/api/admin"),  # type: ignore[attr-defined]
            "webhooks": (hooks, "/api/webhooks"),
            "suppliers": (suppliers_api.build(ctx, ctx.suppliers.push), "/api/suppliers"),
            "channels": (channels_api.build(ctx, sales), "/api/channels"),
            "storefront": (storefront_app.build(bundle()), ""),
        }
        json_h = (b"content-type", b"application/json")
        you = [(b"authorization", token)]
        admin = [(b"authorization", session)]
        templates = [
            Template("shop", "POST", "/session", []),
            Template("shop", "POST", "/carts", you),
            Template("shop", "GET", f"/carts/{cart}", you),
            Template("shop", "POST", f"/carts/{cart}/items", [*you, json_h],
                     f'{{"sku": "{sku}", "qty": 1}}'.encode()),
            Template("shop", "PUT", f"/carts/{cart}/items/{sku}", [*you, json_h], b'{"qty": 2}'),
            Template("shop", "DELETE", f"/carts/{cart}/items/{sku}", you),
            Template("orders", "GET", "/", you),
            Template("orders", "GET", f"/{order}", you),
            Template("orders", "GET", f"/{order}/events", [*you, (b"last-event-id", b"1")]),
            Template("orders", "POST", "/quote", [*you, json_h],
                     f'{{"cart_id": "{quoted}"}}'.encode()),
            Template("catalog", "GET", "/products", []),
            Template("catalog", "GET", "/categories", [(b"accept-encoding", b"gzip")]),
            Template("catalog", "GET", "/availability", [], query=f"sku={sku}".encode()),
            Template("polls", "GET", "/", [], query=b"placement=checkout"),
            Template("polls", "GET", f"/{open_poll}", you),
            Template("polls", "POST", f"/{open_poll}/votes", [*you, json_h],
                     b'{"option_id": "o1"}'),
            Template("admin", "POST", "/login", [json_h], b'{"api_key": "x", "totp_code": "1"}',
                     refused=True),
            Template("admin", "GET", f"/stock/{sku}", admin),
            Template("admin", "POST", f"/stock/{sku}/restock", [*admin, json_h], b'{"qty": 1}'),
            Template("admin", "POST", "/stock/import", [*admin, (b"content-type", b"text/csv")],
                     f"sku,action,quantity\n{sku},restock,1\n".encode()),
            Template("admin", "GET", "/audit", admin),
            Template("webhooks", "POST", "/stripe/primary",
                     [json_h, (b"stripe-signature", b"t=1,v1=00")], b'{"id": "evt_1"}',
                     refused=True),
            Template("storefront", "GET", "/", [(b"accept", b"text/html")]),
            Template("storefront", "GET", "/sw.js", [(b"if-none-match", b'"x"')]),
        ]  # fmt: skip
        fill = {"cart_id": cart, "sku": sku, "order_id": order, "poll_id": open_poll,
                "slug": "no-such-kit", "account": "primary", "name": "x.svg", "path": "x",
                "rest": "x", "key_id": "0123456789abcdef", "supplier": "no-such-supplier",
                "supplier_sku": "S-1", "sync_id": "sync-0123",
                "drop_id": "d_aaaaaaaaaaaaaaaa", "channel": "no-such-channel"}  # fmt: skip
        yield Apps(polls, apps, templates, fill)


def acceptable(answer: Answer) -> str | None:
    """Why ``answer`` breaks the rule, or None."""
    if answer.status >= 500 or answer.status == 0:
        return f"status {answer.status}: {answer.body[:300]!r}"
    if answer.status >= 400:
        try:
            body = answer.json()
        except ValueError:
            if b"<html" in answer.body[:200].lower():  # the storefront's own 404 page
                return None
            return f"{answer.status} without a JSON body: {answer.body[:200]!r}"
        if not isinstance(body, dict) or "code" not in body or "message" not in body:
            return f"{answer.status} not in matchday's error shape: {body}"
    return None


def with_header(headers: Headers, name: bytes, value: bytes) -> Headers:
    return [(k, v) for k, v in headers if k != name] + [(name, value)]


async def test_malformed_bytes_in_any_header_of_a_valid_request_are_a_4xx(apps: Apps) -> None:
    failures: list[str] = []
    sent = 0
    for n, t in enumerate(apps.templates):
        app, root = apps.apps[t.app]
        control = await call(app, t.method, t.path, t.headers, t.body, root_path=root,
                             query=t.query)  # fmt: skip
        assert (control.status >= 400) == t.refused, (t, control.body[:300])
        for name in HEADERS:
            for value in bad_values(n):
                headers = with_header(t.headers, name, value)
                answer = await call(app, t.method, t.path, headers, t.body, root_path=root,
                                    query=t.query)  # fmt: skip
                sent += 1
                why = acceptable(answer)
                if why:
                    failures.append(f"{t.app} {t.method} {t.path} {name!r}={value[:40]!r}: {why}")
    assert sent > 5000
    assert failures == [], "\n".join(failures[:40])


_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


async def test_every_route_of_every_app_refuses_malformed_credentials_with_a_4xx(
    apps: Apps,
) -> None:
    routes: list[tuple[str, str, str]] = []
    for name, (app, _) in apps.apps.items():
        for route in app.routes:
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    routes.append((name, method, _PARAM.sub(lambda m: apps.fill[m[1]], route.path)))
    assert len(routes) > 50
    failures = []
    for name, method, path in routes:
        app, root = apps.apps[name]
        for header in (b"authorization", b"idempotency-key", b"content-type"):
            for value in (b"Bearer u_abc.\xe9", b"\x00\xff", b"mds1.\xe9", b"\xe9" * 65):
                body = b'{"x": 1}' if method in ("POST", "PUT", "PATCH") else b""
                answer = await call(app, method, path, [(header, value)], body, root_path=root)
                why = acceptable(answer)
                if why:
                    failures.append(f"{name} {method} {path} {header!r}={value!r}: {why}")
    assert failures == [], "\n".join(failures[:40])
