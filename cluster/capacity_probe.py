"""What ``matchday capacity measure`` sends: its own catalogue entries, and each request class
as one call, driven at a fixed rate.

The probe creates a product of its own (two plentiful sizes, one sold out, one hot for the
shard ceiling, category ``capacity-probe``) and a poll, so measuring never sells the shop's
stock; it hides the product again when done. Fans are made by the ``session`` phase and
reused by the phases after it (a cart each, an item in it, a refused add of the sold-out
size, a view, a checkout, the order's status, a vote), as a fan's app would call them.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from matchday.capacity import classes as k
from matchday.settings import Settings

# Past this many requests in flight a due request waits: measure is not a stress test.
MAX_IN_FLIGHT = 256
# Like the Locust personas (loadtests/personas.py): catalogue filters fans combine.
LISTINGS: tuple[dict[str, Any], ...] = (
    {"limit": 24}, {"limit": 24, "category": "jerseys"},
    {"limit": 24, "category": "jerseys", "size": "M"}, {"limit": 24, "category": "boots"},
    {"limit": 24, "category": "balls"},
)  # fmt: skip
DECLINE_EVERY = 10  # one checkout in ten is declined, as loadtests' MATCHDAY_LT_DECLINE_RATE
EXPECTED = {
    k.BROWSE: {200}, k.PRODUCT: {200}, k.AVAILABILITY: {200}, k.SESSION: {201}, k.CART: {201},
    k.ADD: {201}, k.ADD_SOLD_OUT: {409}, k.CART_VIEW: {200}, k.CHECKOUT: {201},
    k.ORDER_STATUS: {200}, k.POLL_VOTE: {201},
}  # fmt: skip
FANLESS = (k.BROWSE, k.PRODUCT, k.AVAILABILITY)  # the catalogue's: no fan, no token
STOCK = 1_000_000  # catalog.models.MAX_STOCK: room for any measurement
# What a fan's request of each class needs an earlier phase to have made: the second rate's
# pass skips a class whose prerequisite it could not run (its fans have no cart, no order).
NEEDS = {
    k.CART: k.SESSION, k.ADD: k.CART, k.ADD_SOLD_OUT: k.CART, k.CART_VIEW: k.ADD,
    k.CHECKOUT: k.ADD, k.ORDER_STATUS: k.CHECKOUT, k.POLL_VOTE: k.SESSION,
}  # fmt: skip


def new_key() -> str:
    # Base32 (as loadtests/client.py): a hex key can carry a digit run the PAN guard refuses.
    return base64.b32encode(os.urandom(15)).decode().lower()


@dataclass(frozen=True)
class Fixture:
    run: str
    slug: str
    regular: tuple[str, str]
    sold_out: str
    hot: str
    poll_id: str
    slugs: tuple[str, ...] = ()


@dataclass
class Fan:
    customer: str
    token: str
    cart: str = ""
    order: str = ""


@dataclass
class Outcome:
    ok: int = 0
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)


async def create_fixture(settings: Settings) -> Fixture:
    """The probe's product, SKUs and poll, through the same services the admin API uses."""
    from redis.asyncio import Redis

    from matchday.catalog.models import CategoryIn, ProductIn, VariantIn
    from matchday.catalog.service import CatalogService
    from matchday.inventory.routing import Router
    from matchday.polls.models import OptionIn, PollIn
    from matchday.storage.catalog_repo import CatalogRepository
    from matchday.storage.db import make_pool
    from matchday.storage.polls_repo import PollsRepository

    run = base64.b32encode(os.urandom(5)).decode()
    prefix, slug = f"CAPACITY-{run}", f"capacity-{run.lower()}"
    sizes = {"S": STOCK, "M": STOCK, "L": 0, "XL": STOCK}  # XL: the hot shard's SKU
    product = ProductIn(
        slug=slug, name=f"Capacity probe {run}", category="capacity-probe", price_cents=1000,
        image_url=f"/static/img/{slug}.svg",
        variants=[VariantIn(sku=f"{prefix}-{s}", size=s, initial_stock=n)
                  for s, n in sizes.items()],
    )  # fmt: skip
    pool = make_pool(settings.database_url, max_size=2)
    await pool.open()
    redis = Redis.from_url(settings.redis_url)
    try:
        catalog = CatalogService(
            CatalogRepository(pool),
            redis,
            availability_key=settings.availability_key,
            cache_ttl_s=settings.catalog_cache_ttl_s,
        )
        await catalog.put_category(CategoryIn(slug="capacity-probe", name="Capacity probe"))
        await catalog.create_product(product, Router(settings.shards, settings.dedicated_shards))
        spec = PollIn(question=f"Capacity probe {run}?", placement="checkout",
                      options=[OptionIn(label="Yes"), OptionIn(label="No")])  # fmt: skip
        poll = await PollsRepository(pool).create(f"p_{run.lower()}", spec, "capacity")
    finally:
        await redis.aclose()
        await pool.close()
    return Fixture(run, slug, (f"{prefix}-S", f"{prefix}-M"), f"{prefix}-L", f"{prefix}-XL",
                   poll.poll_id)  # fmt: skip


async def hide_fixture(settings: Settings, fixture: Fixture) -> None:
    """The probe product out of the shop's listings (its rows stay: orders point at them)."""
    from redis.asyncio import Redis

    from matchday.catalog.models import ProductPatch
    from matchday.catalog.service import CatalogService
    from matchday.storage.catalog_repo import CatalogRepository
    from matchday.storage.db import make_pool

    pool = make_pool(settings.database_url, max_size=1)
    await pool.open()
    redis = Redis.from_url(settings.redis_url)
    try:
        catalog = CatalogService(
            CatalogRepository(pool), redis, availability_key=settings.availability_key
        )
        await catalog.update_product(fixture.slug, ProductPatch(active=False))
    finally:
        await redis.aclose()
        await pool.close()


class Probe:
    """One method per request class; ``i`` numbers the request within its phase. A fan's
    request is made for ``fan`` when given (a mixed phase's journey), else for the ``i``-th
    fan the session phase made."""

    def __init__(self, http: Any, base: str, fixture: Fixture) -> None:
        self.http, self.base, self.fx = http, base.rstrip("/"), fixture
        self.fans: list[Fan] = []

    async def send(
        self, method: str, path: str, *, token: str = "", body: Any = None,
        params: Any = None, key: bool = False,
    ) -> tuple[int, Any]:  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if key:
            headers["Idempotency-Key"] = new_key()
        async with self.http.request(method, self.base + path, json=body, params=params,
                                     headers=headers) as r:  # fmt: skip
            data = await r.json(content_type=None) if r.status in (200, 201) else None
            return int(r.status), data

    async def browse(self, i: int) -> int:
        return (await self.send("GET", "/api/catalog/products", params=LISTINGS[i % 5]))[0]

    async def product(self, i: int) -> int:
        slugs = self.fx.slugs or (self.fx.slug,)
        return (await self.send("GET", f"/api/catalog/products/{slugs[i % len(slugs)]}"))[0]

    async def availability(self, i: int) -> int:
        return (await self.send("GET", "/api/catalog/availability", params={"sku": self.fx.hot}))[0]

    def _fan(self, i: int, fan: Fan | None) -> Fan:
        return self.fans[i] if fan is None else fan

    async def session(self, i: int, fan: Fan | None = None) -> int:
        status, data = await self.send("POST", "/api/shop/session", key=True)
        if status == 201 and fan is not None:
            fan.customer, fan.token = data["customer_id"], data["token"]
        elif status == 201:
            self.fans.append(Fan(data["customer_id"], data["token"]))
        return status

    async def cart(self, i: int, fan: Fan | None = None) -> int:
        fan = self._fan(i, fan)
        status, data = await self.send("POST", "/api/shop/carts", token=fan.token, key=True)
        fan.cart = data["cart_id"] if status == 201 else ""
        return status

    def _items(self, fan: Fan) -> str:
        return f"/api/shop/carts/{fan.cart}/items"

    async def add_to_cart(self, i: int, fan: Fan | None = None) -> int:
        fan, sku = self._fan(i, fan), self.fx.regular[i % 2]
        body = {"sku": sku, "qty": 1}
        return (await self.send("POST", self._items(fan), token=fan.token, body=body, key=True))[0]

    async def add_sold_out(self, i: int, fan: Fan | None = None) -> int:
        fan, body = self._fan(i, fan), {"sku": self.fx.sold_out, "qty": 1}
        return (await self.send("POST", self._items(fan), token=fan.token, body=body, key=True))[0]

    async def cart_view(self, i: int, fan: Fan | None = None) -> int:
        fan = self._fan(i, fan)
        return (await self.send("GET", f"/api/shop/carts/{fan.cart}", token=fan.token))[0]

    async def checkout(self, i: int, fan: Fan | None = None) -> int:
        fan = self._fan(i, fan)
        declined = i % DECLINE_EVERY == DECLINE_EVERY - 1
        card = "pm_card_chargeDeclined" if declined else "pm_card_visa"
        body = {"cart_id": fan.cart, "payment_token": card}
        status, data = await self.send("POST", "/api/orders/", token=fan.token, body=body, key=True)
        fan.order = data.get("order_id", "") if status == 201 and data else ""
        return status

    async def order_status(self, i: int, fan: Fan | None = None) -> int:
        fan = self._fan(i, fan)
        return (await self.send("GET", f"/api/orders/{fan.order}", token=fan.token))[0]

    async def poll_vote(self, i: int, fan: Fan | None = None) -> int:
        fan, body = self._fan(i, fan), {"option_id": f"o{1 + i % 2}"}
        path = f"/api/polls/{self.fx.poll_id}/votes"
        return (await self.send("POST", path, token=fan.token, body=body, key=True))[0]

    def call(self, cls: str) -> Callable[[int], Awaitable[int]]:
        fn: Callable[[int], Awaitable[int]] = getattr(self, cls)
        return fn

    def for_fan(self, cls: str, fan: Fan) -> Callable[[int], Awaitable[int]]:
        """``cls``'s call for ``fan`` (the catalogue's classes need none)."""
        fn: Callable[[int, Fan], Awaitable[int]] = getattr(self, cls)
        if cls in FANLESS:
            return self.call(cls)
        return lambda i: fn(i, fan)


async def timed(call: Callable[[int], Awaitable[int]], i: int, expected: set[int],
                 out: Outcome) -> None:  # fmt: skip
    began = time.perf_counter()
    try:
        status = str(await call(i))
    except Exception as exc:  # counted: a refused connection is an error, not a crash
        status = type(exc).__name__
    out.statuses[status] = out.statuses.get(status, 0) + 1
    if status.isdigit() and int(status) in expected:
        out.ok += 1
        out.latencies_ms.append((time.perf_counter() - began) * 1000)
    else:
        out.errors += 1


async def one_at_a_time(
    call: Callable[[int], Awaitable[int]], count: int, expected: set[int]
) -> Outcome:
    """Calls ``0..count-1`` in turn: the latency of a request that waits for nothing else."""
    out = Outcome()
    for i in range(count):
        await timed(call, i, expected, out)
    return out


async def at_fixed_rate(
    call: Callable[[int], Awaitable[int]], count: int, rate: float, expected: set[int],
    first: int = 0,
) -> Outcome:  # fmt: skip
    """Calls ``first..first+count-1`` started ``1/rate`` s apart (open loop, at most
    MAX_IN_FLIGHT at once)."""
    out, gate = Outcome(), asyncio.Semaphore(MAX_IN_FLIGHT)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(i: int) -> None:
        try:
            await timed(call, i, expected, out)
        finally:
            gate.release()

    tasks = []
    for n in range(count):
        delay = start + n / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await gate.acquire()
        tasks.append(asyncio.create_task(one(first + n)))
    await asyncio.gather(*tasks)
    return out
