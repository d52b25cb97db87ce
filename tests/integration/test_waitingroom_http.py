"""The waiting room over HTTP, in-process through the apps (real PostgreSQL, Redis and shard
core): operators run a drop through the admin API (audited); fans join, watch, get a pass,
buy; add-to-cart (lean path and FastAPI route), quantity changes and checkout require the
pass for the drop's SKUs; malformed, forged, borrowed and expired tokens get clear 4xx."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from matchday.embedded import EmbeddedRedis
from matchday.settings import Settings
from matchday.waitingroom.tokens import solve
from matchday.web.queue_api import waiting_room
from tests.integration.test_admin_api import Admin, open_admin

pytestmark = pytest.mark.integration

# What a drop's answers carry: to operators (admin API), and a fan's status (never the
# ticket but in the answer that issues it).
DROP_KEYS = {
    "drop_id",
    "name",
    "skus",
    "state",
    "opens_at",
    "rate_per_s",
    "pass_ttl_s",
    "pow_bits",
    "address_limit",
    "created_at",
    "origin",
    "rate_source",
}
QUEUE_KEYS = {"waiting", "admitted", "pending", "tickets", "refused", "behind"}
STATUS_KEYS = {
    "drop_id",
    "state",
    "position",
    "waiting",
    "estimated_wait_s",
    "held",
    "pass_expires_at",
}


@pytest.fixture
async def admin(settings: Settings) -> AsyncIterator[Admin]:
    async with open_admin(settings) as a:
        yield a


def error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code and body["message"] and body["retryable"] is False, body
    return dict(body)


async def new_drop(admin: Admin, skus: list[str], **spec: Any) -> tuple[str, dict[str, str]]:
    """An open drop, created and opened over the admin API; its id and the admin's headers."""
    ops = await admin.login()
    body = {"name": "Final jersey", "skus": skus, "pow_bits": 0, "rate_per_s": 100.0, **spec}
    r = await admin.http.post("/drops", json=body, headers={**ops, "Idempotency-Key": "k1"})
    assert r.status_code == 201, r.text
    assert set(r.json()) == DROP_KEYS
    drop_id = str(r.json()["drop_id"])
    r = await admin.http.post(f"/drops/{drop_id}/open", headers=ops)
    assert r.json()["state"] == "open", r.text
    assert set(r.json()) == DROP_KEYS
    # Every process binds a new drop's SKUs within its refresh period; this one at once.
    waiting_room(admin.stack.ctx).gate._next = 0.0
    return drop_id, ops


async def admitted_fan(admin: Admin, drop_id: str) -> tuple[dict[str, str], str, str]:
    """A fan who joined, waited its turn and claimed its pass: (auth, ticket, pass)."""
    shop = admin.stack.shop
    auth = await admin.stack.session()
    for _ in range(20):  # after a Redis restart, the first command meets a dead connection
        r = await shop.post(f"/drops/{drop_id}/tickets", json={}, headers=auth)
        if r.status_code != 503:
            break
        await asyncio.sleep(0.05)
    ticket = r.json()["ticket"]
    await until_admitted(shop, drop_id, ticket)
    r = await shop.post(f"/drops/{drop_id}/pass", json={"ticket": ticket}, headers=auth)
    assert r.status_code == 200, r.text
    return auth, ticket, str(r.json()["pass"])


async def until_admitted(shop: httpx.AsyncClient, drop_id: str, ticket: str) -> None:
    """Poll as the queue page does (each poll advances the queue) until admitted."""
    for _ in range(100):
        r = await shop.get(f"/drops/{drop_id}/status", params={"ticket": ticket})
        if r.status_code == 200 and r.json()["state"] == "admitted":
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not admitted: {r.text}")


async def add(admin: Admin, auth: dict[str, str], cart: str, sku: str, passes: str | None = None,
              via_route: bool = False) -> httpx.Response:  # fmt: skip
    headers = {**auth, **({"X-Matchday-Pass": passes} if passes else {})}
    # A query string sends the add to the FastAPI route instead of the lean path.
    path = f"/carts/{cart}/items" + ("?via=route" if via_route else "")
    return await admin.stack.shop.post(path, json={"sku": sku, "qty": 1}, headers=headers)


async def test_a_fan_queues_is_admitted_and_buys_with_a_pass_and_nobody_without(
    admin: Admin,
) -> None:
    sku, free = await admin.stack.product(stock=3, limit=1, sizes=2)
    drop_id, ops = await new_drop(admin, [sku])
    stranger = await admin.stack.session()
    cart = await admin.stack.cart(stranger)
    found = await admin.stack.shop.get("/drops", params={"sku": sku})
    assert found.json() == {"sku": sku, "drop_id": drop_id}  # where the storefront sends fans
    error(await admin.stack.shop.get("/drops", params={"sku": free}), 404, "not_found")
    for via_route in (False, True):
        error(await add(admin, stranger, cart, sku, via_route=via_route), 403, "pass_required")
    assert (await add(admin, stranger, cart, free)).status_code == 201  # not in the drop
    auth, _, pass_ = await admitted_fan(admin, drop_id)
    cart = await admin.stack.cart(auth)
    assert (await add(admin, auth, cart, sku, pass_)).status_code == 201
    # The pass never lifts the engine's per-customer limit.
    error(await add(admin, auth, cart, sku, pass_, via_route=True), 409, "limit_exceeded")
    r = await admin.stack.shop.put(f"/carts/{cart}/items/{sku}", json={"qty": 2}, headers=auth)
    error(r, 403, "pass_required")
    order = {"cart_id": cart, "payment_token": "pm_card_visa"}
    error(await admin.stack.orders.post("/", json=order, headers=auth), 403, "pass_required")
    r = await admin.stack.orders.post("/", json=order, headers={**auth, "X-Matchday-Pass": pass_})
    assert (r.status_code, r.json()["status"]) == (201, "paid"), r.text
    assert await admin.stack.stock(sku) == (3, 0, 1)
    stats = (await admin.http.get(f"/drops/{drop_id}", headers=ops)).json()
    assert (stats["available"], stats["queue"]["admitted"], stats["queue"]["pending"]) == (2, 1, 0)
    assert set(stats) == DROP_KEYS | {"available", "held", "queue"}
    assert set(stats["queue"]) == QUEUE_KEYS
    actions = {
        e.action
        for e in await admin.repo.recent_audit(200)
        if e.target in (drop_id, "Final jersey")
    }
    assert {"drop.create", "drop.open"} <= actions


async def test_tickets_and_passes_are_not_transferable_forgeable_or_usable_once_expired(
    admin: Admin,
) -> None:
    (sku,) = await admin.stack.product(stock=5)
    drop_id, _ = await new_drop(admin, [sku])
    auth, ticket, pass_ = await admitted_fan(admin, drop_id)
    thief = await admin.stack.session()
    cart = await admin.stack.cart(thief)
    error(await add(admin, thief, cart, sku, pass_), 403, "token_refused")
    shop = admin.stack.shop
    r = await shop.post(f"/drops/{drop_id}/pass", json={"ticket": ticket}, headers=thief)
    error(r, 403, "token_refused")
    forged = ticket[:-4] + ("aaaa" if not ticket.endswith("aaaa") else "bbbb")
    error(
        await shop.get(f"/drops/{drop_id}/status", params={"ticket": forged}), 403, "token_refused"
    )
    for malformed in ("nonsense", ticket + "x", "mdt1." + "a" * 40):
        r = await shop.get(f"/drops/{drop_id}/status", params={"ticket": malformed})
        error(r, 422, "token_malformed")
    error(await add(admin, thief, cart, sku, "mdp1.garbage"), 422, "token_malformed")
    tokens = waiting_room(admin.stack.ctx).room.tokens
    customer = admin.stack.ctx.identity.customer(auth["Authorization"])
    lapsed = tokens.pass_(drop_id, customer, time.time() - 1)
    mine = await admin.stack.cart(auth)
    error(await add(admin, auth, mine, sku, lapsed), 410, "token_expired")
    r = await shop.get("/drops/d_aaaaaaaaaaaaaaaa/status", params={"ticket": ticket})
    error(r, 403, "token_refused")  # another drop's ticket
    error(await shop.get("/drops/d_aaaaaaaaaaaaaaaa", headers=auth), 404, "not_found")
    error(
        await shop.get("/drops/not-a-drop/status", params={"ticket": ticket}), 422, "invalid_input"
    )


async def test_the_queue_holds_fans_in_order_streams_their_turn_and_says_sold_out(
    admin: Admin,
) -> None:
    (sku,) = await admin.stack.product(stock=1)
    drop_id, ops = await new_drop(admin, [sku], rate_per_s=0.01, pow_bits=4)
    shop = admin.stack.shop
    fans = []
    for _ in range(3):
        auth = await admin.stack.session()
        c = (await shop.post(f"/drops/{drop_id}/challenge", headers=auth)).json()
        assert set(c) == {"challenge", "bits", "expires_in_s"} and c["bits"] == 4
        body = {"challenge": c["challenge"], "nonce": solve(c["challenge"], c["bits"])}
        r = await shop.post(f"/drops/{drop_id}/tickets", json=body, headers=auth)
        assert r.status_code == 201, r.text
        assert set(r.json()) == STATUS_KEYS | {"ticket"}
        fans.append((auth, r.json()["ticket"]))
    positions = [(await shop.get(f"/drops/{drop_id}/status", params={"ticket": t})).json()
                 for _, t in fans]  # fmt: skip
    assert all(set(p) == STATUS_KEYS for p in positions), positions  # no ticket in a status
    assert [(p["state"], p["position"]) for p in positions] == [("waiting", n) for n in (1, 2, 3)]
    r = await shop.post(f"/drops/{drop_id}/pass", json={"ticket": fans[0][1]}, headers=fans[0][0])
    error(r, 409, "not_admitted")
    r = await admin.http.put(f"/drops/{drop_id}/rate", json={"rate_per_s": 50.0}, headers=ops)
    assert r.json()["rate_per_s"] == 50.0 and set(r.json()) == DROP_KEYS
    waiting_room(admin.stack.ctx).room._drops.clear()  # past the drop cache's second
    async with shop.stream("GET", f"/drops/{drop_id}/events", params={"ticket": fans[0][1]}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = (await r.aread()).decode()
    states = [
        json.loads(line[6:])["state"] for line in text.splitlines() if line.startswith("data: ")
    ]
    assert states[-1] == "admitted" and set(states[:-1]) <= {"waiting"}
    auth, ticket = fans[0]
    pass_ = (
        await shop.post(f"/drops/{drop_id}/pass", json={"ticket": ticket}, headers=auth)
    ).json()
    assert set(pass_) == {"pass", "expires_at", "skus"} and pass_["skus"] == [sku]
    cart = await admin.stack.cart(auth)
    assert (await add(admin, auth, cart, sku, pass_["pass"])).status_code == 201
    room = waiting_room(admin.stack.ctx).room
    room._levels.clear()  # past the stock cache's half second
    last = (await shop.get(f"/drops/{drop_id}/status", params={"ticket": fans[2][1]})).json()
    assert (last["state"], last["held"]) == ("sold_out", 1)
    r = await shop.post(f"/drops/{drop_id}/tickets", json={"nonce": "zz"}, headers=fans[1][0])
    assert r.status_code == 201  # joining again: the ticket it holds, the work not re-checked
    await admin.http.post(f"/drops/{drop_id}/close", headers=ops)
    room._drops.clear()
    newcomer = await admin.stack.session()
    r = await shop.post(f"/drops/{drop_id}/tickets", json={}, headers=newcomer)
    error(r, 409, "conflict")


async def test_admin_drop_routes_refuse_bad_input_and_unknown_drops(admin: Admin) -> None:
    ops = await admin.login()
    r = await admin.http.post("/drops", json={"name": "x", "skus": []}, headers=ops)
    error(r, 422, "invalid_input")
    r = await admin.http.post("/drops", json={"name": "x", "skus": ["NO-SUCH-SKU-9"]}, headers=ops)
    error(r, 422, "invalid_input")
    error(await admin.http.post("/drops/d_aaaaaaaaaaaaaaaa/open", headers=ops), 404, "not_found")
    error(await admin.http.post("/drops/d_aaaaaaaaaaaaaaaa/open"), 401, "unauthorized")
    (sku,) = await admin.stack.product(stock=1)
    r = await admin.http.post("/drops", json={"name": "later", "skus": [sku]}, headers=ops)
    drop_id = r.json()["drop_id"]
    assert r.json()["state"] == "scheduled"
    error(await admin.http.post(f"/drops/{drop_id}/resume", headers=ops), 409, "conflict")
    listed = (await admin.http.get("/drops", headers=ops)).json()["drops"]
    assert drop_id in {d["drop_id"] for d in listed}
    assert all(set(d) == DROP_KEYS for d in listed)
    audit = [e for e in await admin.repo.recent_audit(200, "drop.resume") if e.target == drop_id]
    assert audit and audit[0].outcome == "conflict"
    for verb, state in (("pause", "paused"), ("resume", "open")):
        moved = await admin.http.post(f"/drops/{drop_id}/{verb}", headers=ops)
        assert moved.status_code == 200 and set(moved.json()) == DROP_KEYS, moved.text
        assert moved.json()["state"] == state


async def test_with_redis_away_the_queue_answers_503_and_admitted_fans_keep_buying(
    settings: Settings, own_redis: EmbeddedRedis
) -> None:
    async with open_admin(settings, redis_url=own_redis.url) as admin:
        sku, other = await admin.stack.product(stock=5, sizes=2)
        drop_id, _ = await new_drop(admin, [sku, other])
        auth, ticket, pass_ = await admitted_fan(admin, drop_id)
        latecomer = await admin.stack.session()
        cart = await admin.stack.cart(auth)
        own_redis.stop()
        try:
            shop = admin.stack.shop
            r = await shop.post(f"/drops/{drop_id}/tickets", json={}, headers=latecomer)
            assert (r.status_code, r.json()["retryable"]) == (503, True), r.text
            assert int(r.headers["Retry-After"]) >= 1
            r = await shop.get(f"/drops/{drop_id}/status", params={"ticket": ticket})
            assert r.status_code == 503 and "Retry-After" in r.headers, r.text
            # The pass is checked without Redis: the admitted fan buys on.
            assert (await add(admin, auth, cart, other, pass_)).status_code == 201
        finally:
            own_redis.start()
        assert await admin.stack.stock(other) == (5, 1, 0)


async def test_a_redis_that_lost_the_queue_may_over_admit_but_nothing_is_oversold(
    settings: Settings, own_redis: EmbeddedRedis
) -> None:
    async with open_admin(settings, redis_url=own_redis.url) as admin:
        (sku,) = await admin.stack.product(stock=2, limit=1)
        drop_id, _ = await new_drop(admin, [sku])
        a_auth, _, a_pass = await admitted_fan(admin, drop_id)
        b_auth, _, b_pass = await admitted_fan(admin, drop_id)
        a_cart = await admin.stack.cart(a_auth)
        assert (await add(admin, a_auth, a_cart, sku, a_pass)).status_code == 201
        own_redis.stop()
        for f in own_redis.data_dir.glob("appendonly*"):
            f.unlink()  # the worst case: it comes back empty
        own_redis.start()
        # B's admission, not yet used, was forgotten with the queue: C is admitted for the
        # last unit while B's pass is still good. The engine lets one of them have it.
        c_auth, _, c_pass = await admitted_fan(admin, drop_id)
        results = [
            await add(admin, auth, await admin.stack.cart(auth), sku, p)
            for auth, p in ((b_auth, b_pass), (c_auth, c_pass))
        ]
        assert sorted(r.status_code for r in results) == [201, 409]
        # A pass never lifts the per-customer limit, the queue's state or not.
        error(await add(admin, a_auth, a_cart, sku, a_pass, via_route=True), 409, "limit_exceeded")
        assert await admin.stack.stock(sku) == (2, 2, 0)
