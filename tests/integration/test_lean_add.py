"""The lean add-to-cart path answers exactly as the documented FastAPI route (issue 12.4).

Every case is sent twice on one stack (real PostgreSQL, Redis, shard core), each time with
fresh sessions, carts and products: once to the shop app as deployed (the lean path in front)
and once to the same app built without it. Status, error bodies, Retry-After and
Idempotent-Replayed must match, and success bodies match but for the hold's id and expiry.
A key first answered by one path is replayed by the other. Every case is also sent over HTTP
through the add lane serving the deployed app (matchday/web/add_lane.py, ADR 0033), and must be
answered as the app answers it. Over HTTP through the ingress:
tests/e2e/ingress/test_hot_add_hints.py and test_add_lane.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from matchday.settings import Settings
from matchday.web import shop_api
from matchday.web.add_lane import AddLane
from matchday.web.fast_add import is_add_path
from matchday.web.ratelimit import LEASE_S
from tests.http_raw import OverHTTP
from tests.integration.asgi_raw import Answer, Headers, call
from tests.integration.shop_stack import Stack, open_stack

pytestmark = pytest.mark.integration

ROOT = "/api/shop"
JSON = (b"content-type", b"application/json")
VOLATILE = ("reservation_id", "expires_at", "expires_in_s")


@dataclass
class Paths:
    stack: Stack
    lean: Any  # the shop app as deployed
    plain: Any  # the same app without the lean path
    lane: Any  # the deployed app through an add lane, over HTTP

    def lean_count(self) -> int:
        return int(self.lean.state.lean_add.answered)


@pytest.fixture(scope="module")  # one stack: tests/integration/shop_stack.py
async def paths(settings: Settings) -> AsyncIterator[Paths]:
    async with open_stack(settings, max_body_bytes=4096) as stack:
        assert stack.ctx.carts is not None
        plain = shop_api.build(stack.ctx, lean_route=False)
        lean = shop_api.build(stack.ctx)
        lane = AddLane(lean, accepts=is_add_path, root_path=ROOT, max_body=4096)
        port = (await lane.start("127.0.0.1", 0)).sockets[0].getsockname()[1]
        yield Paths(stack, lean, plain, OverHTTP(port))
        await lane.close()


@dataclass
class Shopper:
    auth: Headers
    cart: str
    sku: str


made: list[str] = []  # what shopper() made, newest last


async def shopper(stack: Stack, stock: int = 10, limit: int | None = None) -> Shopper:
    (sku,) = await stack.product(stock=stock, limit=limit)
    auth = await stack.session()
    cart = await stack.cart(auth)
    made.extend([sku, cart])
    return Shopper([(b"authorization", auth["Authorization"].encode())], cart, sku)


async def add(app: Any, s: Shopper, body: bytes | None = None, *extra: tuple[bytes, bytes],
              cart: str | None = None, query: bytes = b"") -> Answer:  # fmt: skip
    body = body if body is not None else f'{{"sku": "{s.sku}", "qty": 1}}'.encode()
    headers = [*s.auth, JSON, (b"content-length", str(len(body)).encode())]
    replaced = {name for name, _ in extra}
    headers = [(k, v) for k, v in headers if k not in replaced] + list(extra)
    return await call(app, "POST", f"/carts/{cart or s.cart}/items", headers, body,
                      root_path=ROOT, query=query)  # fmt: skip


def normal(answer: Answer, since: int) -> tuple[Any, ...]:
    """The answer with this case's own SKUs and carts (made after ``since``) and the hold's
    id and expiry replaced by placeholders."""
    text = answer.body.decode()
    for n, value in enumerate(made[since:]):
        text = text.replace(value, f"<made {n}>")
    body = json.loads(text) if text else None
    if isinstance(body, dict):
        body = {k: ("<volatile>" if k in VOLATILE else v) for k, v in body.items()}
    wanted = (b"content-type", b"retry-after", b"idempotent-replayed")
    headers = sorted((k, v) for k, v in answer.headers if k in wanted)
    return answer.status, body, headers


Case = Callable[[Paths, Any], Awaitable[Answer]]


async def success(p: Paths, app: Any) -> Answer:
    return await add(app, await shopper(p.stack))


async def success_with_a_charset(p: Paths, app: Any) -> Answer:
    s = await shopper(p.stack)
    body = f'{{"sku": "{s.sku}", "qty": 2}}'.encode()
    return await add(app, s, body, (b"content-type", b"application/json; charset=utf-8"))


async def success_with_a_query_string(p: Paths, app: Any) -> Answer:
    return await add(app, await shopper(p.stack), query=b"utm=x")


async def keyed_then_replayed(p: Paths, app: Any) -> Answer:
    s = await shopper(p.stack)
    first = await add(app, s, None, (b"idempotency-key", b"click-1"))
    again = await add(app, s, None, (b"idempotency-key", b"click-1"))
    assert first.json()["reservation_id"] == again.json()["reservation_id"]
    return again


async def card_number_like_key(p: Paths, app: Any) -> Answer:
    s = await shopper(p.stack)
    key = (b"idempotency-key", b"f4541b0638592073735e3c4f24d0b084")  # its digits pass Luhn
    await add(app, s, None, key)
    return await add(app, s, None, key)


async def key_reused_for_another_body(p: Paths, app: Any) -> Answer:
    s = await shopper(p.stack)
    await add(app, s, None, (b"idempotency-key", b"k-2"))
    return await add(app, s, f'{{"sku": "{s.sku}", "qty": 3}}'.encode(),
                     (b"idempotency-key", b"k-2"))  # fmt: skip


async def malformed_key(p: Paths, app: Any) -> Answer:
    return await add(app, await shopper(p.stack), None, (b"idempotency-key", b"k" * 65))


async def no_token(p: Paths, app: Any) -> Answer:
    s = await shopper(p.stack)
    s.auth = []
    return await add(app, s)


async def forged_token(p: Paths, app: Any) -> Answer:
    s = await shopper(p.stack)
    token = s.auth[0][1]
    s.auth = [(b"authorization", token[:-1] + (b"0" if token[-1:] != b"0" else b"1"))]
    return await add(app, s)


async def rate_limited(p: Paths, app: Any) -> Answer:
    s = await shopper(p.stack)
    client = s.auth[0][1].decode().split(" ")[1].split(".")[0]
    await p.stack.ctx.redis.hset(f"matchday:rl:c:{client}", mapping={"tokens": 0, "ts": 10**13})
    limiter = p.stack.ctx.limiter
    clock = limiter.clock
    limiter.clock = lambda: clock() + LEASE_S + 1  # the lease the cart's creation took ran out
    try:
        return await add(app, s)
    finally:
        limiter.clock = clock


async def unknown_sku(p: Paths, app: Any) -> Answer:
    return await add(app, await shopper(p.stack), b'{"sku": "NO-SUCH-SKU", "qty": 1}')


async def someone_elses_cart(p: Paths, app: Any) -> Answer:
    mine, theirs = await shopper(p.stack), await shopper(p.stack)
    return await add(app, mine, None, cart=theirs.cart)


async def out_of_stock(p: Paths, app: Any) -> Answer:
    s = await shopper(p.stack, stock=2)
    return await add(app, s, f'{{"sku": "{s.sku}", "qty": 3}}'.encode())


async def over_the_limit(p: Paths, app: Any) -> Answer:
    s = await shopper(p.stack, limit=1)
    return await add(app, s, f'{{"sku": "{s.sku}", "qty": 2}}'.encode())


async def checked_out_cart(p: Paths, app: Any) -> Answer:
    s = await shopper(p.stack)
    assert (await add(app, s)).status == 201
    auth = {"Authorization": s.auth[0][1].decode()}
    r = await p.stack.orders.post("/", json={"cart_id": s.cart, "payment_token": "pm_card_visa"},
                                  headers=auth)  # fmt: skip
    assert r.status_code == 201, r.text
    # The replica still remembers the cart as open: the engine's cart fence refuses it.
    return await add(app, s)


def with_body(text: str) -> Case:
    async def case(p: Paths, app: Any) -> Answer:
        s = await shopper(p.stack)
        return await add(app, s, text.replace("SKU", s.sku).encode("utf-8"))

    case.__name__ = f"body {text[:30]}"
    return case


def with_bytes(make: Callable[[str], bytes], name: str) -> Case:
    async def case(p: Paths, app: Any) -> Answer:
        s = await shopper(p.stack)
        return await add(app, s, make(s.sku))

    case.__name__ = name
    return case


def with_header(name: bytes, value: bytes) -> Case:
    async def case(p: Paths, app: Any) -> Answer:
        return await add(app, await shopper(p.stack), None, (name, value))

    case.__name__ = f"header {name.decode()}"
    return case


async def bad_cart_id(p: Paths, app: Any) -> Answer:
    return await add(app, await shopper(p.stack), None, cart="c_0189")


async def card_number_cart_id(p: Paths, app: Any) -> Answer:
    return await add(app, await shopper(p.stack), None, cart="c_4242424242424242")


async def too_large(p: Paths, app: Any) -> Answer:
    s = await shopper(p.stack)
    return await add(app, s, f'{{"sku": "{s.sku}", "qty": 1, "pad": "{"x" * 5000}"}}'.encode())


async def no_content_length(p: Paths, app: Any) -> Answer:
    s = await shopper(p.stack)
    body = f'{{"sku": "{s.sku}", "qty": 1}}'.encode()
    return await call(app, "POST", f"/carts/{s.cart}/items", [*s.auth, JSON], body,
                      root_path=ROOT)  # fmt: skip


LEAN = [success, success_with_a_charset, keyed_then_replayed, card_number_like_key,
        key_reused_for_another_body, malformed_key, no_token, forged_token, rate_limited,
        unknown_sku, someone_elses_cart, out_of_stock, over_the_limit,
        checked_out_cart]  # fmt: skip
DELEGATED = [
    with_body('{"sku": "SKU", "qty": 0}'),
    with_body('{"sku": "SKU", "qty": true}'),
    with_body('{"sku": "SKU", "qty": "1"}'),
    with_body('{"sku": "SKU", "qty": 1.0}'),
    with_body('{"sku": "SKU", "qty": 1, "qty": 100}'),
    with_body('{"sku": "SKU", "qty": 1, "price": 0}'),
    with_body('{"qty": 1}'),
    with_body("[]"),
    with_body("not json"),
    with_body('{"sku": "SKU", "qty": 1, "note": "4000 0566 5566 5556"}'),
    with_bytes(lambda sku: b"\xef\xbb\xbf" + f'{{"sku": "{sku}"}}'.encode(), "bom"),
    with_bytes(lambda sku: f'{{"sku": "{sku}"}}'.encode("utf-16"), "utf-16"),
    with_header(b"content-type", b"text/plain"),
    with_header(b"idempotency-key", b"caf\xe9"),
    with_header(b"x-forwarded-for", b"4242424242424242"),
    bad_cart_id, card_number_cart_id, too_large, no_content_length, success_with_a_query_string,
]  # fmt: skip


STATUS = [201, 201, 201, 201, 422, 422, 401, 401, 429, 404, 404, 409, 409, 409,
          422, 422, 422, 422, 422, 422, 422, 422, 422, 422, 422, 422, 422, 400, 422,
          422, 422, 413, 201, 201]  # fmt: skip


@pytest.mark.parametrize("via", ["lean", "lane"])
@pytest.mark.parametrize(("case", "status"), list(zip(LEAN + DELEGATED, STATUS, strict=True)),
                         ids=lambda c: getattr(c, "__name__", str(c)))  # fmt: skip
async def test_both_paths_answer_alike(paths: Paths, case: Case, status: int, via: str) -> None:
    """``via``: the deployed app called directly, or over HTTP through the add lane."""
    before, start = paths.lean_count(), len(made)
    lean = await case(paths, paths.lean if via == "lean" else paths.lane)
    answered = paths.lean_count() - before
    middle = len(made)
    plain = await case(paths, paths.plain)
    assert normal(lean, start) == normal(plain, middle)
    assert lean.status == status, lean.body
    # The ordinary cases were the lean path's own; the rest went to the documented route.
    assert (answered > 0) == (case in LEAN), answered


async def test_a_key_answered_by_one_path_is_replayed_by_the_other(paths: Paths) -> None:
    for first, second in ((paths.lean, paths.plain), (paths.plain, paths.lean)):
        s = await shopper(paths.stack)
        key = (b"idempotency-key", b"retried-click")
        one = await add(first, s, None, key)
        two = await add(second, s, None, key)
        assert one.status == two.status == 201
        assert two.json() == one.json() and two.header(b"idempotent-replayed") == b"true"
        assert await paths.stack.stock(s.sku) == (10, 1, 0)


async def test_the_documented_route_and_its_openapi_entry_are_unchanged(paths: Paths) -> None:
    lean_doc = (await call(paths.lean, "GET", "/openapi.json", [], root_path=ROOT)).json()
    plain_doc = (await call(paths.plain, "GET", "/openapi.json", [], root_path=ROOT)).json()
    assert lean_doc == plain_doc
    post = lean_doc["paths"]["/carts/{cart_id}/items"]["post"]
    assert set(post["responses"]) >= {"201", "401", "404", "409", "422", "429", "503"}
    assert list(lean_doc["paths"])[:2] == ["/healthz", "/readyz"]  # declared order


async def test_an_ordinary_add_never_enters_fastapis_own_stack(paths: Paths) -> None:
    app = shop_api.build(paths.stack.ctx)
    s = await shopper(paths.stack)
    assert (await add(app, s)).status == 201
    # Starlette builds an app's middleware stack at its first request through it.
    assert app.middleware_stack is None
    assert (await call(app, "GET", "/healthz", [], root_path=ROOT)).status == 200
    assert app.middleware_stack is not None


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (RuntimeError("a bug"), 500, "internal"),
        (RedisConnectionError("gone"), 503, "unavailable"),
    ],
    ids=["bug", "redis down"],
)
async def test_an_unexpected_failure_is_answered_alike_by_both_paths(
    paths: Paths, monkeypatch: pytest.MonkeyPatch, failure: Exception, status: int, code: str
) -> None:
    async def failing(*args: Any) -> Any:
        raise failure

    assert paths.stack.ctx.carts is not None
    monkeypatch.setattr(paths.stack.ctx.carts, "add", failing)

    async def answered(app: Any) -> Answer:
        async def server(scope: Any, receive: Any, send: Any) -> None:
            with pytest.raises(type(failure)):  # both re-raise it for the server's log
                await app(scope, receive, send)

        return await add(server, await shopper(paths.stack))

    before = paths.lean_count()
    lean = await answered(paths.lean)
    assert paths.lean_count() == before + 1
    plain = await answered(paths.plain)
    assert (lean.status, lean.json()) == (plain.status, plain.json())
    assert lean.status == status and lean.json()["code"] == code
    assert lean.header(b"retry-after") == plain.header(b"retry-after")
    laned = await add(paths.lane, await shopper(paths.stack))  # the lane logs what it raised
    assert (laned.status, laned.json()) == (plain.status, plain.json())
    assert laned.header(b"retry-after") == plain.header(b"retry-after")


@pytest.mark.parametrize("path", ["lean", "replayed"])
async def test_an_add_that_hangs_is_answered_503_when_its_bound_runs_out(
    paths: Paths, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """The ingress turns Serve's request timeout off for the add (cluster/ingress_rules.py);
    the lean front's own bound answers instead, on both of its paths: the engine call, and
    a body handed on to FastAPI (here FastAPI itself hangs)."""
    from matchday.web import fast_add

    async def hanging(*args: Any) -> Any:
        await asyncio.Event().wait()

    assert paths.stack.ctx.carts is not None
    monkeypatch.setattr(fast_add, "ADD_TIMEOUT_S", 0.2)
    s = await shopper(paths.stack)
    if path == "lean":
        monkeypatch.setattr(paths.stack.ctx.carts, "add", hanging)
        answer = await add(paths.lean, s)
    else:
        monkeypatch.setattr(paths.lean._front, "app", hanging)
        answer = await add(paths.lean, s, f'{{"sku": "{s.sku}", "qty": 1.0}}'.encode())
    assert answer.status == 503, answer.body
    assert answer.json()["code"] == "unavailable"
    assert answer.json()["message"] == fast_add.TIMED_OUT
    assert answer.header(b"retry-after") == b"1"
