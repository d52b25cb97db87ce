"""The admin core on real PostgreSQL: API key + TOTP authentication (replays, revocation,
lockout), the redacting append-only audit log, stock imports (all or nothing, idempotent
re-runs after a crash), and the ``matchday admin`` CLI run in-process."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable

import psycopg
import pyotp
import pytest

from cluster.cli import main as cli_main
from matchday.admin.audit import REDACTED, AuditLog
from matchday.admin.auth import AdminAuth, AuthPolicy
from matchday.admin.records import AdminIdentity
from matchday.admin.sealing import TotpSeal
from matchday.admin.stock_import import (
    ImportRejected,
    StockImporter,
    import_id_for,
    request_id_for,
)
from matchday.domain.errors import (
    Conflict,
    Forbidden,
    InvariantViolation,
    MatchdayError,
    NotFound,
    Unauthorized,
    Unavailable,
)
from matchday.inventory.commands import StockView
from matchday.inventory.records import SkuRow
from matchday.inventory.routing import Router
from matchday.settings import Settings
from matchday.storage.admin_repo import AdminRepository
from matchday.storage.db import make_pool
from matchday.storage.inventory_repo import InventoryRepository
from tests.conftest import uid
from tests.fakes import ManualClock

pytestmark = pytest.mark.integration


@pytest.fixture
async def admin_repo(settings: Settings) -> AsyncIterator[AdminRepository]:
    pool = make_pool(settings.database_url, max_size=4)
    await pool.open()
    try:
        yield AdminRepository(pool)
    finally:
        await pool.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000.0)


@pytest.fixture
def auth(admin_repo: AdminRepository, clock: ManualClock) -> AdminAuth:
    return AdminAuth(admin_repo, clock, AuthPolicy(max_failures=3, lockout_s=120.0))


def code_at(totp_secret: str, t: float) -> str:
    return str(pyotp.TOTP(totp_secret).at(t))


# -- authentication ------------------------------------------------------------------------


async def test_a_new_key_with_a_current_code_authenticates_as_its_holder(
    auth: AdminAuth, clock: ManualClock
) -> None:
    name = uid("ops")
    api_key, totp_secret, uri = await auth.create_key(name)
    assert re.fullmatch(r"mdk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", api_key)
    assert uri.startswith("otpauth://totp/") and "issuer=matchday" in uri
    assert pyotp.parse_uri(uri).secret == totp_secret
    who = await auth.authenticate(api_key, code_at(totp_secret, clock.now()), client="10.0.0.7")
    assert who == AdminIdentity(api_key.split("_")[1], name, "10.0.0.7")


async def test_the_database_keeps_a_hash_of_the_key_never_the_key(
    auth: AdminAuth, admin_repo: AdminRepository
) -> None:
    api_key, _, _ = await auth.create_key(uid("ops"))
    key_id, secret = api_key.split("_", 2)[1:]
    stored = await admin_repo.get_key(key_id)
    assert stored is not None and len(stored.secret_hash) == 32
    assert secret.encode() not in stored.secret_hash
    listed = [k for k in await auth.list_keys() if k.key_id == key_id]
    assert len(listed) == 1 and not hasattr(listed[0], "secret_hash")


async def test_the_totp_secret_is_sealed_at_rest_and_only_the_shop_key_opens_it(
    admin_repo: AdminRepository, clock: ManualClock
) -> None:
    shop_key = secrets.token_hex(32)
    auth = AdminAuth(admin_repo, clock, seal=TotpSeal(shop_key))
    api_key, totp_secret, _ = await auth.create_key(uid("ops"))
    key_id = api_key.split("_")[1]
    stored = await admin_repo.get_key(key_id)
    assert stored is not None and stored.totp_secret.startswith("v1:")
    assert totp_secret not in stored.totp_secret
    who = await auth.authenticate(api_key, code_at(totp_secret, clock.now()))
    assert who.key_id == key_id
    # Another shop key (a leaked dump read elsewhere, a rotated key): no code works, and the
    # refusal says what to do.
    other = AdminAuth(admin_repo, clock, seal=TotpSeal(secrets.token_hex(32)))
    clock.advance(60)
    with pytest.raises(Unauthorized, match="create a new admin key"):
        await other.authenticate(api_key, code_at(totp_secret, clock.now()))


async def test_a_secret_stored_before_sealing_still_authenticates(
    admin_repo: AdminRepository, clock: ManualClock
) -> None:
    clear = AdminAuth(admin_repo, clock)  # written in the clear, as before sealing existed
    api_key, totp_secret, _ = await clear.create_key(uid("ops"))
    sealed = AdminAuth(admin_repo, clock, seal=TotpSeal(secrets.token_hex(32)))
    who = await sealed.authenticate(api_key, code_at(totp_secret, clock.now()))
    assert who.key_id == api_key.split("_")[1]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: None,
        lambda k: "",
        lambda k: "Bearer " + k,
        lambda k: k[:-1],  # too short
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # wrong secret
        lambda k: "mdk_0123456789abcdef_" + k.split("_", 2)[2],  # unknown key id
    ],
    ids=["none", "empty", "prefixed", "truncated", "wrong-secret", "unknown-id"],
)
async def test_a_missing_malformed_or_wrong_key_is_unauthorized(
    auth: AdminAuth, clock: ManualClock, mangle: Callable[[str], str | None]
) -> None:
    api_key, totp_secret, _ = await auth.create_key(uid("ops"))
    with pytest.raises(Unauthorized):
        await auth.authenticate(mangle(api_key), code_at(totp_secret, clock.now()))


async def test_a_missing_or_wrong_code_is_unauthorized(
    admin_repo: AdminRepository, clock: ManualClock
) -> None:
    auth = AdminAuth(admin_repo, clock, AuthPolicy(max_failures=100))
    api_key, totp_secret, _ = await auth.create_key(uid("ops"))
    good = code_at(totp_secret, clock.now())
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    for code in (None, "", "12345", "1234567", "abcdef", wrong):
        with pytest.raises(Unauthorized):
            await auth.authenticate(api_key, code)
    stale = code_at(totp_secret, clock.now() - 90)  # outside valid_window=1
    with pytest.raises(Unauthorized, match="wrong TOTP code"):
        await auth.authenticate(api_key, stale)


async def test_a_code_is_accepted_once_and_older_codes_are_refused_after_it(
    admin_repo: AdminRepository, clock: ManualClock
) -> None:
    auth = AdminAuth(admin_repo, clock)  # default lockout: replays must not lock here
    api_key, totp_secret, _ = await auth.create_key(uid("ops"))
    now = clock.now()
    await auth.authenticate(api_key, code_at(totp_secret, now))
    with pytest.raises(Unauthorized, match="already used"):
        await auth.authenticate(api_key, code_at(totp_secret, now))
    # The previous step's code is inside the window and was never used, but it is older
    # than the accepted one: a code seen earlier on the wire cannot be played after it.
    with pytest.raises(Unauthorized, match="already used"):
        await auth.authenticate(api_key, code_at(totp_secret, now - 30))
    # Thirty seconds on, the accepted code is still inside the window, and still refused.
    clock.advance(30)
    with pytest.raises(Unauthorized, match="already used"):
        await auth.authenticate(api_key, code_at(totp_secret, now))
    await auth.authenticate(api_key, code_at(totp_secret, clock.now()))


async def test_of_two_requests_racing_with_the_same_code_exactly_one_gets_in(
    auth: AdminAuth, clock: ManualClock
) -> None:
    api_key, totp_secret, _ = await auth.create_key(uid("ops"))
    code = code_at(totp_secret, clock.now())
    results = await asyncio.gather(
        *(auth.authenticate(api_key, code) for _ in range(4)), return_exceptions=True
    )
    assert sum(isinstance(r, AdminIdentity) for r in results) == 1
    assert sum(isinstance(r, Unauthorized) for r in results) == 3


async def test_a_revoked_key_is_refused_even_with_a_fresh_code(
    auth: AdminAuth, clock: ManualClock
) -> None:
    api_key, totp_secret, _ = await auth.create_key(uid("ops"))
    key_id = api_key.split("_")[1]
    first = await auth.revoke(key_id)
    again = await auth.revoke(key_id)
    assert first.revoked_at == again.revoked_at == clock.now()
    with pytest.raises(Unauthorized, match="revoked"):
        await auth.authenticate(api_key, code_at(totp_secret, clock.now()))
    with pytest.raises(NotFound):
        await auth.revoke("0123456789abcdef")


async def test_repeated_wrong_codes_lock_the_key_until_the_lockout_ends(
    auth: AdminAuth, clock: ManualClock
) -> None:
    api_key, totp_secret, _ = await auth.create_key(uid("ops"))
    wrong = f"{(int(code_at(totp_secret, clock.now())) + 1) % 1_000_000:06d}"
    for _ in range(2):
        with pytest.raises(Unauthorized, match=r"wrong TOTP code$"):
            await auth.authenticate(api_key, wrong)
    with pytest.raises(Unauthorized, match="locked for 120 s"):
        await auth.authenticate(api_key, wrong)
    with pytest.raises(Forbidden, match="locked"):
        await auth.authenticate(api_key, code_at(totp_secret, clock.now()))
    clock.advance(121)
    who = await auth.authenticate(api_key, code_at(totp_secret, clock.now()))
    assert who.key_id == api_key.split("_")[1]


async def test_someone_without_the_secret_cannot_lock_a_key_out(
    auth: AdminAuth, clock: ManualClock
) -> None:
    api_key, totp_secret, _ = await auth.create_key(uid("ops"))
    forged = api_key[:-4] + "AAAA" if not api_key.endswith("AAAA") else api_key[:-4] + "BBBB"
    for _ in range(10):
        with pytest.raises(Unauthorized, match="unknown API key"):
            await auth.authenticate(forged, "000000")
    await auth.authenticate(api_key, code_at(totp_secret, clock.now()))


# -- audit log -----------------------------------------------------------------------------


async def test_audit_entries_are_recorded_newest_first_with_secrets_redacted(
    admin_repo: AdminRepository, clock: ManualClock
) -> None:
    audit = AuditLog(admin_repo, clock)
    who = AdminIdentity("0123456789abcdef", "ops", "10.0.0.9")
    action = f"test.{uid('act').lower()}"
    params = {
        "sku": "JERSEY-M",
        "qty": 5,
        "totp_code": "123456",
        "api_key": "mdk_x",
        "nested": {"Password": "hunter2", "items": [{"token": "t"}, {"n": 1}]},
        "note": "pasted mdk_0123456789abcdef_" + "s" * 43,
    }
    first = await audit.record(who, action, "JERSEY-M", params, request_id="req-1")
    clock.advance(1)
    second = await audit.record(who, action, "JERSEY-M", {"qty": 6}, outcome="out_of_stock")
    entries = await audit.recent(10, action=action)
    assert [e.id for e in entries] == [second, first]
    newest, oldest = entries
    assert (newest.outcome, newest.at - oldest.at) == ("out_of_stock", 1.0)
    assert (oldest.key_id, oldest.client, oldest.request_id) == (who.key_id, who.client, "req-1")
    assert oldest.params == {
        "sku": "JERSEY-M",
        "qty": 5,
        "totp_code": REDACTED,
        "api_key": REDACTED,
        "nested": {"Password": REDACTED, "items": [{"token": REDACTED}, {"n": 1}]},
        "note": REDACTED,
    }
    assert all(e.action == action for e in await audit.recent(1, action=action))


async def test_the_audit_log_refuses_to_be_rewritten(
    admin_repo: AdminRepository, settings: Settings
) -> None:
    entry = await AuditLog(admin_repo).record(None, "test.append-only", "x")
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        for sql in (
            "UPDATE admin_audit SET outcome = 'ok' WHERE id = %s",
            "DELETE FROM admin_audit WHERE id = %s",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                await conn.execute(sql, (entry,))
            await conn.rollback()


# -- stock import --------------------------------------------------------------------------


class EngineLikeWriter:
    """Answers a repeated request id with its first answer, as the engine does; can lose an
    acknowledgement (the change is applied, the caller sees an error) or refuse a SKU."""

    def __init__(self, units: dict[str, int]) -> None:
        self.units = dict(units)
        self.answers: dict[str, StockView | MatchdayError] = {}
        self.calls: list[str] = []
        self.lose_ack_of: set[int] = set()  # the n-th new application (1-based) loses its ack
        self.refuse: set[str] = set()

    async def restock(self, request_id: str, sku: str, qty: int) -> StockView:
        return await self._apply(request_id, sku, lambda u: u + qty)

    async def set_on_hand(self, request_id: str, sku: str, units: int) -> StockView:
        return await self._apply(request_id, sku, lambda u: units)

    async def _apply(self, rid: str, sku: str, change: Callable[[int], int]) -> StockView:
        await asyncio.sleep(0)
        self.calls.append(rid)
        if rid not in self.answers:
            if sku in self.refuse:
                self.answers[rid] = InvariantViolation(sku, "refused by the test")
            else:
                self.units[sku] = change(self.units[sku])
                u = self.units[sku]
                self.answers[rid] = StockView(sku, u, 0, 0, u)
                if len(self.answers) in self.lose_ack_of:
                    raise Unavailable("acknowledgement lost")
        answer = self.answers[rid]
        if isinstance(answer, MatchdayError):
            raise answer
        return answer


async def make_skus(repo: InventoryRepository, n: int, on_hand: int = 10) -> list[str]:
    skus = [uid("SKU").upper() for _ in range(n)]
    await repo.create_skus([SkuRow(s, on_hand, 0, 0) for s in skus], Router(2, 1))
    return skus


def csv_of(*rows: tuple[str, str, int | str]) -> str:
    return "sku,action,quantity\n" + "".join(f"{s},{a},{q}\n" for s, a, q in rows)


async def test_one_bad_row_rejects_the_whole_import_and_nothing_is_applied(
    repo: InventoryRepository, admin_repo: AdminRepository
) -> None:
    skus = await make_skus(repo, 3)
    engine = EngineLikeWriter({s: 10 for s in skus})
    data = csv_of((skus[0], "restock", 5), (skus[1], "set", 3), (skus[2], "restock", 0))
    data += "GHOST-" + uid().upper() + ",restock,1\n"
    importer = StockImporter(admin_repo, engine)
    with pytest.raises(ImportRejected) as info:
        await importer.run(data, idempotency_key=uid("idem"))
    assert [line for line, _ in info.value.errors] == [4, 5]
    assert "unknown SKU GHOST-" in info.value.errors[1][1]
    assert engine.calls == []
    assert engine.units == {s: 10 for s in skus}


async def test_a_valid_import_is_applied_row_by_row_with_deterministic_request_ids(
    repo: InventoryRepository, admin_repo: AdminRepository
) -> None:
    skus = await make_skus(repo, 3)
    engine = EngineLikeWriter({s: 10 for s in skus})
    data = csv_of((skus[0], "restock", 5), (skus[1], "set", 3), (skus[2], "set", 0))
    who = AdminIdentity("0123456789abcdef", "ops")
    report = await StockImporter(admin_repo, engine).run(data, who)
    assert (report.status, report.row_count, report.applied, report.sent) == ("applied", 3, 3, 3)
    assert engine.units == {skus[0]: 15, skus[1]: 3, skus[2]: 0}
    assert sorted(engine.calls) == sorted(request_id_for(report.import_id, n) for n in (2, 3, 4))
    record = await admin_repo.get_import(report.import_id)
    assert record is not None
    assert (record.status, record.key_id, record.errors) == ("applied", who.key_id, [])
    assert record.finished_at is not None
    rows = await admin_repo.import_rows(report.import_id)
    assert [(r.line, r.status, (r.result or {}).get("on_hand")) for r in rows] == [
        (2, "applied", 15),
        (3, "applied", 3),
        (4, "applied", 0),
    ]


async def test_an_import_interrupted_by_a_lost_answer_resumes_without_applying_anything_twice(
    repo: InventoryRepository, admin_repo: AdminRepository
) -> None:
    skus = await make_skus(repo, 5)
    engine = EngineLikeWriter({s: 10 for s in skus})
    engine.lose_ack_of = {3}  # line 4 is applied but its caller sees an error
    data = csv_of(*((s, "restock", 1) for s in skus))
    key = uid("idem")
    importer = StockImporter(admin_repo, engine, chunk=2)
    with pytest.raises(Unavailable):
        await importer.run(data, idempotency_key=key)
    crashed = await importer.report(import_id_for("", key))
    assert (crashed.status, crashed.applied) == ("pending", 3)  # rows 2, 3 and 5 (not 4)

    report = await importer.run(data, idempotency_key=key)
    assert (report.status, report.applied, report.sent) == ("applied", 5, 2)
    assert engine.units == {s: 11 for s in skus}, "every restock applied exactly once"

    again = await importer.run(data, idempotency_key=key)
    assert (again.status, again.applied, again.sent) == ("applied", 5, 0)
    assert engine.units == {s: 11 for s in skus}
    # Only line 4, whose answer was lost, was sent twice, and the engine answered it from
    # its memory of the request id.
    sent = Counter(engine.calls)
    assert sent.pop(request_id_for(report.import_id, 4)) == 2
    assert set(sent.values()) == {1} and len(sent) == 4


async def test_the_same_bytes_uploaded_twice_are_one_import(
    repo: InventoryRepository, admin_repo: AdminRepository
) -> None:
    skus = await make_skus(repo, 2)
    engine = EngineLikeWriter({s: 10 for s in skus})
    data = csv_of((skus[0], "restock", 4), (skus[1], "restock", 4))
    importer = StockImporter(admin_repo, engine)
    first = await importer.run(data)
    second = await importer.run(data.encode())
    assert first.import_id == second.import_id and second.sent == 0
    assert engine.units == {s: 14 for s in skus}


async def test_an_idempotency_key_reused_for_other_content_is_a_conflict(
    repo: InventoryRepository, admin_repo: AdminRepository
) -> None:
    skus = await make_skus(repo, 1)
    engine = EngineLikeWriter({skus[0]: 10})
    key = uid("idem")
    importer = StockImporter(admin_repo, engine)
    await importer.run(csv_of((skus[0], "restock", 1)), idempotency_key=key)
    with pytest.raises(Conflict):
        await importer.run(csv_of((skus[0], "restock", 2)), idempotency_key=key)
    assert engine.units[skus[0]] == 11


async def test_a_rejected_import_can_be_corrected_under_the_same_idempotency_key(
    repo: InventoryRepository, admin_repo: AdminRepository
) -> None:
    skus = await make_skus(repo, 1)
    engine = EngineLikeWriter({skus[0]: 10})
    key = uid("idem")
    importer = StockImporter(admin_repo, engine)
    with pytest.raises(ImportRejected):
        await importer.run(csv_of((skus[0], "restock", "x")), idempotency_key=key)
    report = await importer.run(csv_of((skus[0], "restock", 2)), idempotency_key=key)
    assert report.status == "applied" and engine.units[skus[0]] == 12


async def test_an_engine_refusal_is_reported_on_its_row_and_the_import_is_partial(
    repo: InventoryRepository, admin_repo: AdminRepository
) -> None:
    skus = await make_skus(repo, 3)
    engine = EngineLikeWriter({s: 10 for s in skus})
    engine.refuse = {skus[1]}
    data = csv_of(*((s, "set", 7) for s in skus))
    report = await StockImporter(admin_repo, engine).run(data)
    assert (report.status, report.applied) == ("partial", 2)
    assert report.refused == [
        {
            "line": 3,
            "sku": skus[1],
            "error": "invariant_violation",
            "message": f"{skus[1]}: refused by the test",
        }
    ]
    assert engine.units == {skus[0]: 7, skus[1]: 10, skus[2]: 7}
    record = await admin_repo.get_import(report.import_id)
    assert record is not None and record.status == "partial" and record.errors == report.refused


# -- the CLI -------------------------------------------------------------------------------


async def test_the_admin_cli_creates_lists_revokes_keys_and_shows_the_audit(
    settings: Settings,
    admin_repo: AdminRepository,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MATCHDAY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MATCHDAY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # main() sets a default; keep ours
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    shop_key = secrets.token_hex(32)
    monkeypatch.setenv("MATCHDAY_SECRET_KEY", shop_key)
    sealed = AdminAuth(admin_repo, seal=TotpSeal(shop_key))  # what the admin API holds

    async def cli(*argv: str) -> tuple[int, str, str]:
        # In a thread: the CLI runs its own event loop, as it does from a shell.
        code = await asyncio.to_thread(cli_main, ["admin", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    name = uid("cli-ops")
    code, out, _ = await cli("create-key", "--name", name)
    assert code == 0
    api_key = re.search(r"API key:\s+(mdk_\S+)", out)
    totp_secret = re.search(r"TOTP secret:\s+([A-Z2-7]+)", out)
    assert api_key and totp_secret and "otpauth://totp/" in out and "shown this once" in out
    key_id = api_key.group(1).split("_")[1]
    stored = await admin_repo.get_key(key_id)
    assert stored is not None and totp_secret.group(1) not in stored.totp_secret  # sealed
    who = await sealed.authenticate(api_key.group(1), pyotp.TOTP(totp_secret.group(1)).now())
    assert who.key_id == key_id

    code, out, _ = await cli("list-keys")
    assert code == 0 and key_id in out and name in out
    assert api_key.group(1).split("_", 2)[2] not in out and totp_secret.group(1) not in out

    code, out, _ = await cli("revoke", key_id)
    assert code == 0 and '"revoked_at": null' not in out
    with pytest.raises(Unauthorized):
        await sealed.authenticate(api_key.group(1), pyotp.TOTP(totp_secret.group(1)).now())

    code, out, _ = await cli("audit", "--limit", "1000")
    assert code == 0
    assert f'"action": "key.revoke",\n    "target": "{key_id}"' in out
    assert f'"action": "key.create",\n    "target": "{key_id}"' in out
    assert '"client": "cli:' in out

    code, _, err = await cli("revoke", "0123456789abcdef")
    assert code == 1 and '"code": "not_found"' in err
