"""The admin API over HTTP (in-process app, real PostgreSQL, Redis and shard core): login with
the second factor, sessions, malformed input, body and rate limits, the audit log.

Stock changes and CSV imports are in test_admin_api_stock.py, pins and the catalogue in
test_admin_api_catalog.py; both reuse ``open_admin``.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pyotp
import pytest

from actors.pinning import pin_sku, unpin_sku
from matchday import bootstrap
from matchday.admin.auth import AdminAuth
from matchday.admin.records import AuditEntry
from matchday.inventory.routing import Router
from matchday.settings import Settings
from matchday.storage.admin_repo import AdminRepository
from matchday.storage.inventory_repo import InventoryRepository
from matchday.web import admin_api
from matchday.web.admin_session import AdminSessions
from tests.conftest import uid
from tests.fakes import ManualClock
from tests.integration.shop_stack import ROUTER, Stack, open_stack

pytestmark = pytest.mark.integration


class _Shard:
    """Stands in for a shard actor handle: records ``evict``/``adopt`` and answers."""

    def __init__(self, shard_id: int, moves: list[tuple[str, int, str]]) -> None:
        self.evict = _Method("evict", shard_id, moves)
        self.adopt = _Method("adopt", shard_id, moves)


@dataclass
class _Method:
    name: str
    shard_id: int
    moves: list[tuple[str, int, str]]

    async def remote(self, skus: list[str]) -> list[str]:
        self.moves.extend((self.name, self.shard_id, sku) for sku in skus)
        return skus


class InProcessPinning:
    """The Serve wrapper's steps (actors/pinning.py, run as is) over the real pin table, with
    recording stand-ins for the shard actors. One ring shard and one dedicated shard."""

    def __init__(self, repo: InventoryRepository) -> None:
        self.repo = repo
        self.router = Router(1, 1)
        self.moves: list[tuple[str, int, str]] = []
        self.handles = {sid: _Shard(sid, self.moves) for sid in self.router.all_shards}

    async def pin(self, sku: str) -> int:
        return await pin_sku(self.repo, self.router, self.handles, sku)

    async def unpin(self, sku: str) -> None:
        await unpin_sku(self.repo, self.router, self.handles, sku)

    async def pins(self) -> dict[str, int]:
        return await self.repo.pins()


@dataclass
class Key:
    api_key: str
    totp_secret: str
    key_id: str
    steps_used: set[int] = field(default_factory=set)

    def fresh_code(self) -> str:
        """A code of a step not yet spent: this step's, else the next (valid_window=1)."""
        for t in (time.time(), time.time() + 30):
            step = int(t // 30)
            if step not in self.steps_used:
                self.steps_used.add(step)
                return str(pyotp.TOTP(self.totp_secret).at(t))
        raise AssertionError("both usable steps spent: a test logs in at most twice per key")


@dataclass
class Admin:
    stack: Stack
    http: httpx.AsyncClient
    auth: AdminAuth
    repo: AdminRepository
    pinning: InProcessPinning

    async def new_key(self) -> Key:
        api_key, totp_secret, _ = await self.auth.create_key(uid("ops"))
        return Key(api_key, totp_secret, api_key.split("_")[1])

    async def login(self, key: Key | None = None) -> dict[str, str]:
        """Bearer headers of a fresh session (of a new key unless one is given)."""
        key = key or await self.new_key()
        body = {"api_key": key.api_key, "totp_code": key.fresh_code()}
        r = await self.http.post("/login", json=body)
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['session_token']}"}

    async def audit(self, target: str, action: str | None = None) -> list[AuditEntry]:
        """Entries naming ``target``, newest first."""
        return [e for e in await self.repo.recent_audit(1000, action) if e.target == target]


@contextlib.asynccontextmanager
async def open_admin(settings: Settings, **overrides: Any) -> AsyncIterator[Admin]:
    async with open_stack(settings, **overrides) as stack:
        pinning = InProcessPinning(stack.inventory)
        app = admin_api.build(bootstrap.with_admin(stack.ctx), pins=pinning, router=ROUTER)
        transport = httpx.ASGITransport(app=app, root_path="/api/admin")
        async with httpx.AsyncClient(
            transport=transport, base_url="http://shop.test/api/admin"
        ) as http:
            repo = AdminRepository(stack.ctx.pool)
            yield Admin(stack, http, AdminAuth(repo), repo, pinning)


@pytest.fixture(scope="module")
async def admin(settings: Settings) -> AsyncIterator[Admin]:
    """One stack for the module (tests/integration/shop_stack.py: its tests isolate by fresh
    keys and SKUs)."""
    async with open_admin(settings) as a:
        yield a


# -- login and sessions ----------------------------------------------------------------------


async def test_a_key_with_a_current_code_gets_a_session_that_reads_stock(admin: Admin) -> None:
    (sku,) = await admin.stack.product(stock=7)
    key = await admin.new_key()
    r = await admin.http.post(
        "/login", json={"api_key": key.api_key, "totp_code": key.fresh_code()}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["key_id"] == key.key_id
    assert 14 * 60 <= body["expires_at"] - time.time() <= 15 * 60
    auth = {"Authorization": f"Bearer {body['session_token']}"}

    r = await admin.http.get(f"/stock/{sku}", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "sku": sku, "on_hand": 7, "reserved": 0, "sold": 0, "available": 7,
        "per_customer_limit": None, "low_stock_threshold": None, "low_stock_order_cap": None,
        "revoked": [],
    }  # fmt: skip
    (entry,) = await admin.audit(f"key:{key.key_id}", "login")
    assert (entry.key_id, entry.outcome) == (key.key_id, "ok")


async def test_a_wrong_code_or_a_replayed_code_gets_no_session_and_is_audited(
    admin: Admin,
) -> None:
    key = await admin.new_key()
    good = key.fresh_code()
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    r = await admin.http.post("/login", json={"api_key": key.api_key, "totp_code": wrong})
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
    assert "session_token" not in r.json()

    first = await admin.http.post("/login", json={"api_key": key.api_key, "totp_code": good})
    assert first.status_code == 200, first.text
    replay = await admin.http.post("/login", json={"api_key": key.api_key, "totp_code": good})
    assert (replay.status_code, replay.json()["code"]) == (401, "unauthorized")
    assert "already used" in replay.json()["message"]

    entries = await admin.audit(f"key:{key.key_id}", "login")
    assert [(e.key_id, e.outcome) for e in entries] == [  # newest first
        (None, "unauthorized"), (key.key_id, "ok"), (None, "unauthorized"),
    ]  # fmt: skip
    assert all(key.api_key not in str(e.params) for e in entries)


async def test_an_api_key_alone_without_the_second_factor_gets_no_session(admin: Admin) -> None:
    key = await admin.new_key()
    for body in ({"api_key": key.api_key, "totp_code": ""}, {"api_key": key.api_key}):
        r = await admin.http.post("/login", json=body)
        assert r.status_code in (401, 422), r.text
        assert "session_token" not in r.json()
    r = await admin.http.post("/login", json={"api_key": key.api_key, "totp_code": "abcdef"})
    assert r.status_code == 401


async def test_revoking_a_key_ends_its_sessions_and_refuses_its_logins(admin: Admin) -> None:
    (sku,) = await admin.stack.product(stock=3)
    key = await admin.new_key()
    auth = await admin.login(key)
    assert (await admin.http.get(f"/stock/{sku}", headers=auth)).status_code == 200

    await admin.auth.revoke(key.key_id)
    r = await admin.http.post(f"/stock/{sku}/restock", json={"qty": 5}, headers=auth)
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
    assert await admin.stack.stock(sku) == (3, 0, 0)
    r = await admin.http.post(
        "/login", json={"api_key": key.api_key, "totp_code": key.fresh_code()}
    )
    assert r.status_code == 401
    assert [e.outcome for e in await admin.audit(sku, "stock.restock")] == ["unauthorized"]


def _forged(admin: Admin, key_id: str) -> dict[str, str]:
    other = AdminSessions(secrets.token_hex(24), admin.repo)  # another shop's secret
    return {"Authorization": f"Bearer {other.issue(key_id).token}"}


def _expired(admin: Admin, key_id: str) -> dict[str, str]:
    secret = admin.stack.ctx.settings.secret_key.get_secret_value()
    past = AdminSessions(secret, admin.repo, clock=ManualClock(time.time() - 16 * 60))
    return {"Authorization": f"Bearer {past.issue(key_id).token}"}


def _tampered(admin: Admin, key_id: str) -> dict[str, str]:
    secret = admin.stack.ctx.settings.secret_key.get_secret_value()
    token = AdminSessions(secret, admin.repo).issue(key_id).token
    prefix, kid, expires, mac = token.split(".")
    return {"Authorization": f"Bearer {prefix}.{kid}.{int(expires) + 3600}.{mac}"}


@pytest.mark.parametrize(
    "headers",
    [
        lambda a, k: {},
        lambda a, k: {"Authorization": "Bearer "},
        lambda a, k: {"Authorization": "Basic dXNlcjpwYXNz"},
        lambda a, k: {"Authorization": "Bearer not-a-session"},
        _forged,
        _expired,
        _tampered,
    ],
    ids=["none", "empty", "basic", "garbage", "forged", "expired", "tampered-expiry"],
)
async def test_calls_without_a_genuine_live_session_are_unauthorized_and_change_nothing(
    admin: Admin, headers: Any
) -> None:
    (sku,) = await admin.stack.product(stock=4)
    key = await admin.new_key()  # a real, unrevoked key: only the session is wrong
    auth = headers(admin, key.key_id)
    for r in (
        await admin.http.get(f"/stock/{sku}", headers=auth),
        await admin.http.post(f"/stock/{sku}/restock", json={"qty": 1}, headers=auth),
        await admin.http.put(f"/pins/{sku}", headers=auth),
        await admin.http.get("/audit", headers=auth),
    ):
        assert (r.status_code, r.json()["code"]) == (401, "unauthorized"), r.text
    assert await admin.stack.stock(sku) == (4, 0, 0)
    assert sku not in await admin.pinning.pins()
    assert [e.outcome for e in await admin.audit(sku)] == ["unauthorized", "unauthorized"]


# -- malformed input, rate limits, the document ---------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {}, {"qty": 0}, {"qty": -3}, {"qty": "5"}, {"qty": 2.5}, {"qty": True},
        {"qty": 10**12}, {"qty": 1, "note": "x"}, [1], "qty=1", None,
    ],
)  # fmt: skip
async def test_malformed_restock_bodies_are_422_and_change_nothing(admin: Admin, body: Any) -> None:
    (sku,) = await admin.stack.product(stock=5)
    auth = await admin.login()
    r = await admin.http.post(f"/stock/{sku}/restock", json=body, headers=auth)
    assert (r.status_code, r.json()["code"]) == (422, "invalid_input"), r.text
    assert await admin.stack.stock(sku) == (5, 0, 0)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/stock/{sku}", {"units": -1}),
        ("PUT", "/stock/{sku}", {"units": 5, "sku": "OTHER"}),
        ("PUT", "/stock/{sku}/limits", {"per_customer_limit": 0}),
        ("PUT", "/stock/{sku}/limits", {"low_stock_threshold": "ten"}),
        ("POST", "/stock/bad%20sku!/restock", {"qty": 1}),
        ("POST", "/products", {"slug": "x"}),
        ("PATCH", "/products/Not_A_Slug", {"name": "x"}),
        ("POST", "/categories", {"slug": "a", "name": "A", "position": -1}),
    ],
)
async def test_other_malformed_requests_are_422_and_change_nothing(
    admin: Admin, method: str, path: str, body: Any
) -> None:
    (sku,) = await admin.stack.product(stock=5, limit=2)
    auth = await admin.login()
    r = await admin.http.request(method, path.format(sku=sku), json=body, headers=auth)
    assert (r.status_code, r.json()["code"]) == (422, "invalid_input"), r.text
    assert await admin.stack.stock(sku) == (5, 0, 0)
    row = (await admin.stack.inventory.stock_rows([sku]))[sku]
    assert row.per_customer_limit == 2


async def test_an_oversized_json_body_is_413_before_it_is_read(admin: Admin) -> None:
    (sku,) = await admin.stack.product(stock=5)
    auth = await admin.login()
    big = b'{"qty": 1, "pad": "' + b"x" * 200_000 + b'"}'
    r = await admin.http.post(
        f"/stock/{sku}/restock",
        content=big,
        headers={**auth, "Content-Type": "application/json"},
    )
    assert (r.status_code, r.json()["code"]) == (413, "payload_too_large")


async def test_an_admin_key_over_its_budget_is_told_to_wait_with_429(
    settings: Settings, admin: Admin
) -> None:
    limits = {"rate_limit_per_s": 0.05, "rate_limit_burst": 3}
    async with open_admin(settings, engine=admin.stack, **limits) as admin:
        (sku,) = await admin.stack.product(stock=5)
        auth = await admin.login()
        codes = [
            (
                await admin.http.post(f"/stock/{sku}/restock", json={"qty": 1}, headers=auth)
            ).status_code
            for _ in range(5)
        ]
        assert codes == [200, 200, 200, 429, 429]
        r = await admin.http.get(f"/stock/{sku}", headers=auth)
        assert (r.status_code, r.json()["code"]) == (429, "rate_limited")
        assert int(r.headers["Retry-After"]) >= 1
        assert await admin.stack.stock(sku) == (8, 0, 0)


async def test_the_openapi_document_declares_the_bearer_scheme_and_error_answers(
    admin: Admin,
) -> None:
    doc = (await admin.http.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    restock = doc["paths"]["/stock/{sku}/restock"]["post"]
    assert {"401", "403", "404", "409", "422", "429"} <= set(restock["responses"])
    assert "text/csv" in doc["paths"]["/stock/import"]["post"]["requestBody"]["content"]
    assert (await admin.http.get("/healthz")).json()["status"] == "ok"


async def test_the_audit_endpoint_lists_the_newest_entries_of_one_action(admin: Admin) -> None:
    (sku,) = await admin.stack.product(stock=5)
    auth = await admin.login()
    await admin.http.post(f"/stock/{sku}/restock", json={"qty": 2}, headers=auth)
    await admin.http.put(f"/stock/{sku}", json={"units": 9}, headers=auth)
    r = await admin.http.get("/audit", params={"action": "stock.set", "limit": 5}, headers=auth)
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    assert 1 <= len(entries) <= 5 and {e["action"] for e in entries} == {"stock.set"}
    mine = [e for e in entries if e["target"] == sku]
    assert mine[0]["params"] == {"units": 9} and mine[0]["outcome"] == "ok"
    r = await admin.http.get("/audit", params={"limit": 0}, headers=auth)
    assert r.status_code == 422
