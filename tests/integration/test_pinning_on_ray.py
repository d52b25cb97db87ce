"""Pinning on the real shard actors: what fails, fails as a clean, typed error.

Two admins pin and unpin one SKU against each other while reserves run on it, through the
admin API (in-process app, the Serve wrapper's own RayPinning) over real shard actors on Ray
and real PostgreSQL. A remote WrongShard used to surface as Ray's RayTaskError(WrongShard),
whose text (the remote traceback) became the 503's message, without Retry-After (issue 13,
item 4). tests/e2e/test_errors_serve.py runs the same race through the Serve ingress.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import ray

from actors.client import connect_client, start_inventory, stop_inventory
from actors.inventory import InventoryShard
from actors.pinning import pin_sku, unpin_sku
from matchday import bootstrap
from matchday.admin.auth import AdminAuth
from matchday.domain.errors import MatchdayError, Unavailable
from matchday.inventory.commands import Release, Reserve
from matchday.inventory.records import SkuRow
from matchday.inventory.routing import Router
from matchday.payments.gateway import TestGateway
from matchday.settings import Settings
from matchday.storage.admin_repo import AdminRepository
from matchday.storage.inventory_repo import InventoryRepository
from matchday.web import admin_api
from matchday.web.context import AdminContext
from serve.admin import RayPinning
from tests.conftest import uid
from tests.e2e.error_shape import LEAK, idempotency_key
from tests.integration.shop_stack import stack_settings
from tests.integration.test_admin_api import Key

pytestmark = pytest.mark.integration

CYCLES = 10


@pytest.fixture(scope="module")
def engine(settings: Settings, ray_session: Any) -> Iterator[tuple[Settings, dict[int, Any]]]:
    s = stack_settings(settings, shards=2, dedicated_shards=1)
    handles = start_inventory(s)
    try:
        yield s, handles
    finally:
        stop_inventory(s)


@pytest.fixture
async def ctx(engine: tuple[Settings, dict[int, Any]]) -> AsyncIterator[AdminContext]:
    s, handles = engine
    shop = await bootstrap.open_shop(s)
    engine_ctx = bootstrap.with_engine(shop, connect_client(s, handles))
    c = bootstrap.with_admin(bootstrap.with_checkout(engine_ctx, TestGateway()))
    try:
        yield c
    finally:
        await c.close()


async def new_sku(ctx: AdminContext, s: Settings) -> str:
    sku = uid("PIN").upper()
    router = Router(s.shards, s.dedicated_shards)
    await InventoryRepository(ctx.pool).create_skus([SkuRow(sku, 1_000, 0, 0)], router)
    return sku


def clean(err: BaseException) -> bool:
    """A domain error as the actor raised it: no Ray wrapper, nothing internal in its text."""
    return (
        isinstance(err, MatchdayError)
        and type(err).__module__ == "matchday.domain.errors"
        and not LEAK.search(str(err))
        and not LEAK.search(err.message)
    )


async def test_racing_pins_and_reserves_fail_only_with_clean_typed_errors(
    engine: tuple[Settings, dict[int, Any]], ctx: AdminContext
) -> None:
    s, handles = engine
    sku = await new_sku(ctx, s)
    repo = InventoryRepository(ctx.pool)
    router = Router(s.shards, s.dedicated_shards)
    client = connect_client(s, handles)
    errors: list[BaseException] = []
    done = asyncio.Event()

    async def pinner() -> None:
        for _ in range(CYCLES):
            for move in (
                pin_sku(repo, router, handles, sku),
                unpin_sku(repo, router, handles, sku),
            ):
                try:
                    await move
                except Exception as exc:
                    errors.append(exc)

    async def shopper() -> None:
        while not done.is_set():
            out = await client.submit(Reserve(uid("rq"), sku, 1, uid("cart"), uid("fan"), 60))
            if out.error is not None:
                errors.append(out.error)
                continue
            rid = out.value.reservation_id  # type: ignore[union-attr]
            gone = await client.submit(Release(uid("rq"), sku, rid))
            if gone.error is not None:
                errors.append(gone.error)

    shoppers = [asyncio.create_task(shopper()) for _ in range(3)]
    try:
        await asyncio.gather(pinner(), pinner())
    finally:
        done.set()
        await asyncio.gather(*shoppers)
    assert [e for e in errors if not clean(e)] == []
    kinds = Counter(type(e).__name__ for e in errors)
    assert set(kinds) <= {"Conflict", "Unavailable", "WrongShard"}, kinds


async def test_a_shard_that_is_gone_is_a_retryable_unavailable_with_a_fixed_message(
    engine: tuple[Settings, dict[int, Any]], ctx: AdminContext
) -> None:
    s, handles = engine
    sku = await new_sku(ctx, s)
    repo = InventoryRepository(ctx.pool)
    router = Router(s.shards, s.dedicated_shards)
    dead = (
        ray.remote(InventoryShard)
        .options(name=uid("dead-shard"), num_cpus=0)
        .remote(  # type: ignore[attr-defined]
            router.dedicated[0], s.payload()
        )
    )
    ray.kill(dead, no_restart=True)
    broken = {**handles, router.dedicated[0]: dead}
    with pytest.raises(Unavailable) as caught:
        await pin_sku(repo, router, broken, sku)
    assert caught.value.message == f"inventory shard {router.dedicated[0]} is not answering; retry"
    assert clean(caught.value)
    # Running it again once the shard is back is safe: the same pin, now complete.
    assert await pin_sku(repo, router, handles, sku) == router.dedicated[0]
    await unpin_sku(repo, router, handles, sku)


@contextlib.asynccontextmanager
async def admin_over(
    ctx: AdminContext, repo: InventoryRepository, router: Router, handles: dict[int, Any], n: int
) -> AsyncIterator[tuple[httpx.AsyncClient, list[dict[str, str]]]]:
    """The admin API with the Serve wrapper's RayPinning over real shards; ``n`` sessions."""
    app = admin_api.build(ctx, pins=RayPinning(repo, router, handles), router=router)
    api_key, totp, _ = await AdminAuth(AdminRepository(ctx.pool)).create_key(uid("ops"))
    key = Key(api_key, totp, api_key.split("_")[1])
    transport = httpx.ASGITransport(app=app, root_path="/api/admin")
    async with httpx.AsyncClient(transport=transport, base_url="http://t/api/admin") as http:
        sessions = []
        for _ in range(n):
            login = {"api_key": key.api_key, "totp_code": key.fresh_code()}
            r = await http.post("/login", json=login)
            assert r.status_code == 200, r.text
            sessions.append({"Authorization": f"Bearer {r.json()['session_token']}"})
        yield http, sessions


async def test_the_admin_api_over_real_shards_answers_every_race_cleanly(
    engine: tuple[Settings, dict[int, Any]], ctx: AdminContext
) -> None:
    s, handles = engine
    sku = await new_sku(ctx, s)
    router = Router(s.shards, s.dedicated_shards)
    repo = InventoryRepository(ctx.pool)
    async with admin_over(ctx, repo, router, handles, 2) as (http, sessions):

        async def admin_loop(auth: dict[str, str]) -> list[httpx.Response]:
            out = []
            for _ in range(CYCLES):
                for method in ("PUT", "DELETE"):
                    idem = {"Idempotency-Key": idempotency_key()}
                    out.append(await http.request(method, f"/pins/{sku}", headers={**auth, **idem}))
            return out

        answers = [r for rs in await asyncio.gather(*map(admin_loop, sessions)) for r in rs]
    statuses = Counter(r.status_code for r in answers)
    assert set(statuses) <= {200, 409, 503} and statuses[200] > 0, statuses
    for r in answers:
        if r.status_code != 200:
            body = r.json()
            assert body["code"] in {"conflict", "unavailable"} and not LEAK.search(body["message"])
            assert r.status_code != 503 or r.headers["Retry-After"] == "1"
            if body["code"] == "conflict":
                assert re.fullmatch(rf"{sku} was .* by a concurrent request .*", body["message"])


class _Overtaken(InventoryRepository):
    """The pin table as another admin's unpin leaves it: committed just after ours."""

    async def set_pin(self, sku: str, shard_id: int | None) -> int | None:
        old = await super().set_pin(sku, shard_id)
        await super().set_pin(sku, None)
        return old


async def test_a_pin_overtaken_by_a_concurrent_unpin_is_a_409_that_says_so(
    engine: tuple[Settings, dict[int, Any]], ctx: AdminContext
) -> None:
    s, handles = engine
    sku = await new_sku(ctx, s)
    router = Router(s.shards, s.dedicated_shards)
    async with admin_over(ctx, _Overtaken(ctx.pool), router, handles, 1) as (http, (auth,)):
        r = await http.put(f"/pins/{sku}", headers=auth)
    owner = router.ring.owner(sku)
    assert (r.status_code, r.json()["code"]) == (409, "conflict"), r.text
    assert r.json()["message"] == (
        f"{sku} was unpinned or pinned elsewhere by a concurrent request and is served by "
        f"shard {owner} now; GET /pins shows it"
    )


async def test_after_a_move_only_its_target_holds_the_sku_whatever_the_row_said(
    engine: tuple[Settings, dict[int, Any]], ctx: AdminContext
) -> None:
    """A stale holder answered a release from memory (404 unknown_reservation): the move
    evicted only the shard the inventory row named, and a concurrent move can leave that
    row behind the shard that really holds the SKU."""
    s, handles = engine
    sku = await new_sku(ctx, s)
    repo = InventoryRepository(ctx.pool)
    router = Router(s.shards, s.dedicated_shards)
    ring_owner = router.ring.owner(sku)
    assert await pin_sku(repo, router, handles, sku) == router.dedicated[0]
    async with ctx.pool.connection() as conn:  # the dedicated shard's claim, not landed yet
        await conn.execute("UPDATE inventory SET shard_id = %s WHERE sku = %s", (ring_owner, sku))
    await unpin_sku(repo, router, handles, sku)
    holders = [sid for sid, h in handles.items() if (await h.stock.remote(sku)).error is None]
    assert holders == [ring_owner]
