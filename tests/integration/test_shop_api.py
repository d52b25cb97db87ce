"""Carts over HTTP (in-process app, real PostgreSQL, Redis and shard core)."""

from __future__ import annotations

import asyncio

import pytest

from matchday.settings import Settings
from tests.conftest import database_of_its_own
from tests.integration.shop_stack import Stack, open_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")  # one stack: tests/integration/shop_stack.py
async def stack(settings: Settings):
    async with open_stack(settings) as s:
        yield s


async def test_a_shopper_adds_changes_and_removes_a_line_and_stock_follows(stack: Stack) -> None:
    (sku,) = await stack.product(stock=10)
    auth = await stack.session()
    cart = await stack.cart(auth)

    r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku, "qty": 2}, headers=auth)
    assert r.status_code == 201, r.text
    line = r.json()
    assert (line["sku"], line["qty"], line["status"]) == (sku, 2, "held")
    assert 0 < line["expires_in_s"] <= stack.ctx.settings.default_ttl_s
    assert await stack.stock(sku) == (10, 2, 0)

    view = (await stack.shop.get(f"/carts/{cart}", headers=auth)).json()
    assert [(ln["sku"], ln["qty"], ln["status"]) for ln in view["lines"]] == [(sku, 2, "held")]
    assert view["units"] == 2 and view["expires_at"] == pytest.approx(line["expires_at"])

    r = await stack.shop.put(f"/carts/{cart}/items/{sku}", json={"qty": 5}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["units"] == 5
    assert await stack.stock(sku) == (10, 5, 0)

    r = await stack.shop.delete(f"/carts/{cart}/items/{sku}", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["units"] == 0
    assert await stack.stock(sku) == (10, 0, 0)


async def test_a_retried_add_with_the_same_key_holds_once_and_replays_the_answer(
    stack: Stack,
) -> None:
    (sku,) = await stack.product(stock=5)
    auth = await stack.session()
    cart = await stack.cart(auth)
    headers = {**auth, "Idempotency-Key": "add-once-1"}
    first = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=headers)
    again = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await stack.stock(sku) == (5, 1, 0)

    other = await stack.shop.post(
        f"/carts/{cart}/items", json={"sku": sku, "qty": 2}, headers=headers
    )
    assert other.status_code == 422
    assert other.json()["code"] == "invalid_input"
    assert await stack.stock(sku) == (5, 1, 0)


async def test_a_retry_whose_http_record_was_lost_still_holds_once(stack: Stack) -> None:
    (sku,) = await stack.product(stock=5)
    auth = await stack.session()
    cart = await stack.cart(auth)
    headers = {**auth, "Idempotency-Key": "lost-record"}
    first = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=headers)
    await stack.ctx.redis.flushdb()  # the HTTP layer forgets; the engine does not
    again = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=headers)
    hold = first.json()["reservation_id"]
    assert again.json()["reservation_id"] == hold
    assert await stack.stock(sku) == (5, 1, 0)
    # The hold is led by the cart's creation time (ADR 0039), as PostgreSQL stored it.
    async with stack.ctx.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT extract(epoch FROM created_at)::float8 FROM carts WHERE cart_id = %s", (cart,)
        )
        (created,) = await cur.fetchone() or (None,)
    assert hold.startswith(f"t{round(created * 1000):011x}.")


async def test_out_of_stock_and_limits_are_clear_409s_that_change_nothing(stack: Stack) -> None:
    (sku,) = await stack.product(stock=3, limit=2)
    auth = await stack.session()
    cart = await stack.cart(auth)
    r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku, "qty": 3}, headers=auth)
    assert r.status_code == 409 and r.json()["code"] == "limit_exceeded", r.text
    ok = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku, "qty": 2}, headers=auth)
    assert ok.status_code == 201
    other = await stack.session()
    other_cart = await stack.cart(other)
    r = await stack.shop.post(
        f"/carts/{other_cart}/items", json={"sku": sku, "qty": 2}, headers=other
    )
    assert r.status_code == 409 and r.json()["code"] == "out_of_stock", r.text
    assert "1 available" in r.json()["message"]
    assert await stack.stock(sku) == (3, 2, 0)


@pytest.mark.parametrize(
    "body",
    [
        {"sku": "X", "qty": 0},
        {"sku": "X", "qty": -1},
        {"sku": "X", "qty": 1.5},
        {"sku": "X", "qty": "two"},
        {"sku": "X", "qty": 10**12},
        {"sku": "x y", "qty": 1},
        {"sku": "", "qty": 1},
        {"sku": "A" * 65, "qty": 1},
        {"sku": "X", "qty": 1, "price": 0},
        {"qty": 1},
        [],
        "not json",
    ],
)
async def test_malformed_add_requests_get_a_422_and_change_nothing(
    stack: Stack, body: object
) -> None:
    (sku,) = await stack.product(stock=5)
    auth = await stack.session()
    cart = await stack.cart(auth)
    if isinstance(body, dict) and body.get("sku") == "X":
        body = {**body, "sku": sku}
    kwargs = {"content": body} if isinstance(body, str) else {"json": body}
    r = await stack.shop.post(f"/carts/{cart}/items", headers=auth, **kwargs)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input"
    assert await stack.stock(sku) == (5, 0, 0)


async def test_carts_are_private_and_tokens_are_checked(stack: Stack) -> None:
    (sku,) = await stack.product(stock=5)
    auth = await stack.session()
    cart = await stack.cart(auth)
    intruder = await stack.session()
    assert (await stack.shop.get(f"/carts/{cart}", headers=intruder)).status_code == 404
    r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=intruder)
    assert r.status_code == 404
    token = auth["Authorization"]
    fake = "0000" if token[-4:] != "0000" else "1111"  # always a different signature
    forged = {"Authorization": token[:-4] + fake}
    assert (await stack.shop.get(f"/carts/{cart}", headers=forged)).status_code == 401
    assert (await stack.shop.get(f"/carts/{cart}")).status_code == 401
    r = await stack.shop.get(f"/carts/{cart}", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    assert await stack.stock(sku) == (5, 0, 0)


async def test_unknown_products_carts_and_lines_are_404s(stack: Stack) -> None:
    auth = await stack.session()
    cart = await stack.cart(auth)
    r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": "NO-SUCH-SKU"}, headers=auth)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert (await stack.shop.get("/carts/c_aaaa", headers=auth)).status_code == 404
    r = await stack.shop.put(f"/carts/{cart}/items/NO-SUCH", json={"qty": 1}, headers=auth)
    assert r.status_code == 404
    assert (await stack.shop.get("/carts/not-a-cart", headers=auth)).status_code == 422


async def test_an_oversized_body_is_refused_with_413(stack: Stack) -> None:
    auth = await stack.session()
    cart = await stack.cart(auth)
    big = b'{"sku": "' + b"A" * 100_000 + b'"}'
    r = await stack.shop.post(
        f"/carts/{cart}/items",
        content=big,
        headers={**auth, "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"


async def test_health_and_readiness_answer(stack: Stack) -> None:
    assert (await stack.shop.get("/healthz")).json()["status"] == "ok"
    r = await stack.shop.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_an_abandoned_cart_releases_its_stock_by_itself(settings: Settings) -> None:
    # A hold's lifetime is the engine's policy: a shard core of its own, on a database of
    # its own so that it does not fence the module's (tests/integration/shop_stack.py).
    with database_of_its_own(settings, "ttl") as own:
        async with open_stack(own, default_ttl_s=1.0) as stack:
            (sku,) = await stack.product(stock=4)
            auth = await stack.session()
            cart = await stack.cart(auth)
            body = {"sku": sku, "qty": 3}
            r = await stack.shop.post(f"/carts/{cart}/items", json=body, headers=auth)
            assert r.status_code == 201
            assert await stack.stock(sku) == (4, 3, 0)
            for _ in range(50):
                await asyncio.sleep(0.1)
                if await stack.stock(sku) == (4, 0, 0):
                    break
            assert await stack.stock(sku) == (4, 0, 0)
            view = (await stack.shop.get(f"/carts/{cart}", headers=auth)).json()
            assert [ln["status"] for ln in view["lines"]] == ["expired"]
            assert view["units"] == 0


async def test_a_client_over_its_rate_limit_gets_429_with_retry_after(
    settings: Settings, stack: Stack
) -> None:
    limits = {"rate_limit_per_s": 1.0, "rate_limit_burst": 3}
    async with open_stack(settings, engine=stack, **limits) as stack:
        auth = await stack.session()
        cart = await stack.cart(auth)
        codes = [
            (await stack.shop.get(f"/carts/{cart}", headers=auth)).status_code for _ in range(4)
        ]
        assert codes[:2] == [200, 200]  # the cart's creation took the first token
        assert codes[-1] == 429
        r = await stack.shop.get(f"/carts/{cart}", headers=auth)
        assert r.status_code == 429 and r.json()["code"] == "rate_limited"
        assert int(r.headers["Retry-After"]) >= 1
        other = await stack.session()  # another client has its own bucket
        assert (await stack.shop.get(f"/carts/{cart}", headers=other)).status_code == 404


async def test_a_postgres_outage_is_a_503_with_a_reason_and_the_shop_recovers_by_itself(
    settings: Settings, own_postgres
) -> None:
    overrides = {"database_url": own_postgres.url}
    async with open_stack(settings, **overrides) as stack:
        (sku,) = await stack.product(stock=5)
        auth = await stack.session()
        cart = await stack.cart(auth)
        own_postgres.stop("immediate")
        try:
            r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=auth)
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "unavailable" and r.json()["retryable"] is True
            assert int(r.headers["Retry-After"]) >= 1
            assert (await stack.shop.get("/readyz")).status_code == 503
        finally:
            own_postgres.start()
        for _ in range(50):
            r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=auth)
            if r.status_code == 201:
                break
            await asyncio.sleep(0.2)
        assert r.status_code == 201, r.text
        assert await stack.stock(sku) == (5, 1, 0)


@pytest.mark.parametrize(
    "body",
    [
        {"sku": "4242424242424242", "qty": 1},
        {"sku": "X", "qty": 1, "note": "4000 0566 5566 5556"},
    ],
)
async def test_a_card_number_sent_to_the_cart_api_is_refused_and_never_stored(
    stack: Stack, body: dict[str, object]
) -> None:
    (sku,) = await stack.product(stock=2)
    auth = await stack.session()
    cart = await stack.cart(auth)
    r = await stack.shop.post(f"/carts/{cart}/items", json=body, headers=auth)
    assert r.status_code == 422 and r.json()["code"] == "card_data_refused"
    assert "4242" not in r.text and "5556" not in r.text
    assert await stack.stock(sku) == (2, 0, 0)
