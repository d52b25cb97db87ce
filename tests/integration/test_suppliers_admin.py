"""Operators' supplier routes through the real admin app (session, audit, idempotency) over
real PostgreSQL, Redis and the shard core: secrets issued once and never stored in the
clear, mappings all or none, bulk syncs queued, forced and cancelled."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cluster.cli import main as cli_main
from matchday.settings import Settings
from matchday.suppliers.admin import SupplierIn
from matchday.suppliers.signing import SecretSeal, signed_headers
from matchday.web import suppliers_api
from tests.conftest import uid
from tests.integration.test_admin_api import Admin, open_admin

pytestmark = pytest.mark.integration

# What a supplier's and a sync's answers carry (never a secret but in the issuing answers).
SUPPLIER_KEYS = {
    "supplier_id",
    "name",
    "feed_url",
    "feed_format",
    "pull_every_s",
    "max_units",
    "active",
    "created_at",
    "updated_at",
    "etag",
    "last_modified",
    "last_pulled_at",
}
SYNC_KEYS = {
    "sync_id",
    "supplier_id",
    "source",
    "status",
    "forced",
    "content_sha256",
    "as_of",
    "total_lines",
    "cursor",
    "applied",
    "unchanged",
    "rejected",
    "queued_by",
    "created_at",
    "started_at",
    "finished_at",
    "report",
    "progress",
}


@pytest.fixture(scope="module")  # one stack: tests/integration/shop_stack.py
async def admin(settings: Settings) -> AsyncIterator[Admin]:
    async with open_admin(settings) as a:
        yield a


async def push(admin: Admin, supplier_id: str, secret: str, lines: list[dict[str, object]]) -> int:
    app = suppliers_api.build(admin.stack.ctx, admin.stack.ctx.suppliers.push)
    body = json.dumps({"message_id": uid("m"), "lines": lines}).encode()
    headers = {**signed_headers(secret, int(time.time()), body), "Content-Type": "application/json"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://shop.test"
    ) as http:
        r = await http.post(f"/{supplier_id}/stock", content=body, headers=headers)
    return r.status_code


async def test_a_supplier_gets_its_secret_once_and_a_retry_with_the_key_gets_it_again(
    admin: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = await admin.login()
    sid = uid("acme").lower()
    spec = {"supplier_id": sid, "name": "Acme Sports", "max_units": 500}
    key = "create-acme-supplier-key"  # long enough never to occur in the row by chance
    r = await admin.http.post("/suppliers", json=spec, headers={**auth, "Idempotency-Key": key})
    assert r.status_code == 201, r.text
    assert r.headers["Cache-Control"] == "no-store"
    secret = r.json()["secret"]
    assert secret.startswith("mdsup_") and r.json()["max_units"] == 500
    assert set(r.json()) == SUPPLIER_KEYS | {"secret", "previous_valid_until"}
    assert r.json()["previous_valid_until"] is None
    again = await admin.http.post("/suppliers", json=spec, headers={**auth, "Idempotency-Key": key})
    assert again.status_code == 201 and again.json()["secret"] == secret  # the lost answer
    other = await admin.http.post(
        "/suppliers", json=spec, headers={**auth, "Idempotency-Key": key + "-other"}
    )
    assert other.status_code == 409 and "secret" not in other.text
    listed = await admin.http.get("/suppliers", headers=auth)
    assert sid in [s["supplier_id"] for s in listed.json()["suppliers"]]
    assert all(set(s) == SUPPLIER_KEYS for s in listed.json()["suppliers"])
    one = (await admin.http.get(f"/suppliers/{sid}", headers=auth)).json()
    assert set(one) == SUPPLIER_KEYS and (one["name"], one["feed_url"]) == ("Acme Sports", None)
    assert secret not in listed.text and secret not in caplog.text
    entries = await admin.audit(sid, "supplier.create")
    assert [e.outcome for e in entries] == ["ok", "ok"] and secret not in repr(entries)
    async with admin.stack.ctx.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT suppliers::text FROM suppliers WHERE supplier_id = %s", (sid,)
        )
        (row,) = await cur.fetchone() or ("",)
    assert secret not in row and key not in row  # sealed, and the key only as a hash


async def test_a_rotation_keeps_the_old_secret_for_its_grace_and_is_not_repeated(
    admin: Admin,
) -> None:
    auth = await admin.login()
    sid = uid("rot").lower()
    r = await admin.http.post("/suppliers", json={"supplier_id": sid, "name": "Rot"}, headers=auth)
    old = r.json()["secret"]
    (sku,) = await admin.stack.product(stock=10)
    mapped = await admin.http.post(
        f"/suppliers/{sid}/mappings",
        json={"mappings": [{"supplier_sku": "S-1", "sku": sku}]},
        headers=auth,
    )
    assert mapped.status_code == 200, mapped.text
    rotated = await admin.http.post(
        f"/suppliers/{sid}/secret", headers={**auth, "Idempotency-Key": "r1"}
    )
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()["secret"]
    assert new != old and rotated.json()["previous_valid_until"] > time.time()
    assert set(rotated.json()) == SUPPLIER_KEYS | {"secret", "previous_valid_until"}
    assert rotated.headers["Cache-Control"] == "no-store"
    retried = await admin.http.post(
        f"/suppliers/{sid}/secret", headers={**auth, "Idempotency-Key": "r1"}
    )
    assert retried.json()["secret"] == new  # not a second rotation: the old one still works
    assert await push(admin, sid, old, [{"sku": "S-1", "level": 7}]) == 200
    assert await push(admin, sid, new, [{"sku": "S-1", "level": 6}]) == 200
    assert await push(admin, sid, "mdsup_not-it", [{"sku": "S-1", "level": 1}]) == 401
    assert await admin.stack.stock(sku) == (6, 0, 0)
    assert [e.outcome for e in await admin.audit(sid, "supplier.rotate")] == ["ok", "ok"]


async def test_mappings_are_all_or_none_and_bad_input_is_a_4xx_that_changes_nothing(
    admin: Admin,
) -> None:
    auth = await admin.login()
    sid = uid("map").lower()
    await admin.http.post("/suppliers", json={"supplier_id": sid, "name": "Map"}, headers=auth)
    (sku,) = await admin.stack.product(stock=3)
    bad = {"mappings": [{"supplier_sku": "A", "sku": sku}, {"supplier_sku": "B", "sku": "NOPE-1"}]}
    r = await admin.http.post(f"/suppliers/{sid}/mappings", json=bad, headers=auth)
    assert r.status_code == 422 and "NOPE-1" in r.json()["message"]
    listed = await admin.http.get(f"/suppliers/{sid}/mappings", headers=auth)
    assert listed.json() == {"mappings": []}
    for path, body in [
        ("/suppliers", {"supplier_id": "Not Valid", "name": "x"}),
        ("/suppliers", {"supplier_id": "ok-id", "name": "x", "feed_url": "ftp://x"}),
        ("/suppliers", {"supplier_id": "ok-id", "name": "x", "pull_every_s": 5}),
        (f"/suppliers/{sid}/mappings", {"mappings": []}),
    ]:
        r = await admin.http.post(path, json=body, headers=auth)
        assert r.status_code == 422 and r.json()["code"] and r.json()["retryable"] is False, r.text
    assert (await admin.http.get("/suppliers/nobody-here", headers=auth)).status_code == 404
    change = {"name": "Map Two", "pull_every_s": 3600}
    changed = await admin.http.patch(f"/suppliers/{sid}", json=change, headers=auth)
    assert changed.status_code == 200 and set(changed.json()) == SUPPLIER_KEYS, changed.text
    assert (changed.json()["name"], changed.json()["pull_every_s"]) == ("Map Two", 3600)
    assert (await admin.http.get(f"/suppliers/{sid}")).status_code == 401
    ok = await admin.http.post(
        f"/suppliers/{sid}/mappings", json={"mappings": [{"supplier_sku": "A", "sku": sku}]},
        headers=auth,
    )  # fmt: skip
    assert ok.json()["mappings"][0]["sku"] == sku
    gone = await admin.http.delete(f"/suppliers/{sid}/mappings/A", headers=auth)
    assert gone.status_code == 200
    assert (
        await admin.http.delete(f"/suppliers/{sid}/mappings/A", headers=auth)
    ).status_code == 404


async def test_a_feed_is_queued_as_a_sync_that_can_be_forced_and_cancelled(admin: Admin) -> None:
    auth = await admin.login()
    sid = uid("feed").lower()
    await admin.http.post("/suppliers", json={"supplier_id": sid, "name": "Feed"}, headers=auth)
    csv_auth = {**auth, "Content-Type": "text/csv"}
    bad = await admin.http.post(
        f"/suppliers/{sid}/syncs", content=b"sku,level\nA,-1\nB,x\n", headers=csv_auth
    )
    assert bad.status_code == 422 and [e["line"] for e in bad.json()["errors"]] == [2, 3]
    other = await admin.http.post(
        f"/suppliers/{sid}/syncs", content=b"a", headers={**auth, "Content-Type": "text/plain"}
    )
    assert other.status_code == 415
    assert (await admin.http.get(f"/suppliers/{sid}/syncs", headers=auth)).json() == {"syncs": []}
    # Larger than the app-wide JSON limit (64 KiB): the upload route takes up to 1 MiB.
    feed = "sku,level\n" + "".join(f"S-{n:06d},{n % 7}\n" for n in range(6000))
    assert len(feed) > admin.stack.ctx.settings.max_body_bytes
    r = await admin.http.post(f"/suppliers/{sid}/syncs", content=feed.encode(), headers=csv_auth)
    assert r.status_code == 202, r.text
    sync = r.json()
    assert (sync["status"], sync["total_lines"], sync["forced"]) == ("queued", 6000, False)
    assert set(sync) == SYNC_KEYS and (sync["report"], sync["progress"]) == (None, 0.0)
    same = await admin.http.post(f"/suppliers/{sid}/syncs", content=feed.encode(), headers=csv_auth)
    assert same.status_code == 200 and same.json()["sync_id"] == sync["sync_id"]
    path = f"/syncs/{sync['sync_id']}"
    read = await admin.http.get(path, headers=auth)
    assert read.status_code == 200 and set(read.json()) == SYNC_KEYS
    assert read.json()["sync_id"] == sync["sync_id"]
    listed = (await admin.http.get(f"/suppliers/{sid}/syncs", headers=auth)).json()["syncs"]
    assert [(s["sync_id"], set(s)) for s in listed] == [(sync["sync_id"], SYNC_KEYS)]
    forced = await admin.http.post(f"{path}/force", headers=auth)
    assert forced.json()["forced"] is True and set(forced.json()) == SYNC_KEYS
    cancelled = await admin.http.post(f"{path}/cancel", headers=auth)
    assert cancelled.json()["status"] == "cancelled"
    assert (await admin.http.post(f"{path}/cancel", headers=auth)).status_code == 409
    assert (await admin.http.get("/syncs/sync-0000", headers=auth)).status_code == 404
    assert [e.outcome for e in await admin.audit(sid, "supplier.sync")] == ["invalid_feed"]
    queued = await admin.audit(sync["sync_id"], "supplier.sync")
    assert [(e.outcome, e.params["new"]) for e in queued] == [("ok", False), ("ok", True)]
    cancels = await admin.audit(sync["sync_id"], "supplier.sync.cancel")
    assert [e.outcome for e in cancels] == ["conflict", "ok"]


async def test_the_cli_manages_suppliers_and_queues_a_large_feed_audited(
    admin: Admin,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    s = admin.stack.ctx.settings
    monkeypatch.setenv("MATCHDAY_DATABASE_URL", s.database_url)
    monkeypatch.setenv("MATCHDAY_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("MATCHDAY_SECRET_KEY", s.secret_key.get_secret_value())
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(cli_main, ["suppliers", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    sid = uid("cli").lower()
    code, out, _ = await cli("create", sid, "--name", "CLI Sports", "--max-units", "900")
    secret = re.search(r"signing secret: (mdsup_\S+)", out)
    assert code == 0 and secret and "shown this once" in out
    assert await push(admin, sid, secret.group(1), [{"sku": "X", "level": 1}]) == 200
    code, _, err = await cli("create", sid, "--name", "again")
    assert code == 1 and '"code": "conflict"' in err
    code, _, err = await cli("update", sid, "--pull-every", "5")
    assert code == 1 and '"code": "invalid_input"' in err and "Traceback" not in err
    (sku,) = await admin.stack.product(stock=4)
    (tmp_path / "map.csv").write_text(f"supplier_sku,sku\nS-1,{sku}\n")
    code, out, _ = await cli("map", sid, str(tmp_path / "map.csv"))
    assert code == 0 and json.loads(out) == {"S-1": sku}
    feed = tmp_path / "feed.csv"
    feed.write_text("sku,level\n" + "".join(f"S-{n},{n % 9}\n" for n in range(1, 100_001)))
    code, out, _ = await cli("sync", sid, str(feed))
    sync = json.loads(out)
    assert code == 0 and (sync["total_lines"], sync["status"]) == (100_000, "queued")
    code, out, _ = await cli("cancel", sync["sync_id"])
    assert code == 0 and json.loads(out)["status"] == "cancelled"
    code, out, _ = await cli("list")
    assert sid in out and secret.group(1) not in out
    actions = [(e.action, e.outcome, e.client.startswith("cli:")) for e in await admin.audit(sid)]
    # Input refused before any work (a bad --pull-every), like a 422 body, is not audited.
    assert actions == [
        ("supplier.sync", "ok", True), ("supplier.map", "ok", True),
        ("supplier.create", "conflict", True), ("supplier.create", "ok", True),
    ]  # fmt: skip
    assert secret.group(1) not in repr(await admin.audit(sid))


async def test_reseal_keeps_every_supplier_secret_across_a_secret_key_rotation(
    admin: Admin,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    s = admin.stack.ctx.settings
    old_key, new_key = s.secret_key.get_secret_value(), secrets.token_hex(32)
    issued = await admin.stack.ctx.suppliers.admin.create(
        SupplierIn(supplier_id=uid("rk").lower(), name="Rotated")
    )
    sid = issued.supplier.supplier_id
    (tmp_path / "old").write_text(old_key)
    monkeypatch.setenv("MATCHDAY_DATABASE_URL", s.database_url)
    monkeypatch.setenv("MATCHDAY_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("MATCHDAY_SECRET_KEY", new_key)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    argv = ["suppliers", "reseal", "--old-key-file", str(tmp_path / "old")]
    # Other tests' suppliers in this database were sealed under other stacks' keys: those
    # are reported unreadable (exit 1); ours is re-sealed.
    await asyncio.to_thread(cli_main, argv)
    out, err = capsys.readouterr()
    assert "resealed" in out and sid not in err
    repo = admin.stack.ctx.suppliers.repo
    sealed = dict(await repo.sealed_rows())[sid]
    assert SecretSeal(new_key).open_current(sid, sealed) == issued.secret  # same secret
    await asyncio.to_thread(cli_main, argv)  # again: already current, left as it is
    assert dict(await repo.sealed_rows())[sid] == sealed
