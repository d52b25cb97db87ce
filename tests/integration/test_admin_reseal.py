"""``matchday admin reseal`` on real PostgreSQL: after the shop's secret key is rotated, every
admin's TOTP secret is re-sealed under the new key, so the same API key and authenticator app
keep working; rows neither key opens are reported and left alone; running it again is safe."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pyotp
import pytest
from psycopg.conninfo import make_conninfo

from cluster.cli import main as cli_main
from matchday.admin.auth import AdminAuth
from matchday.admin.rotation import reseal_all
from matchday.admin.sealing import TotpSeal
from matchday.domain.errors import Unauthorized
from matchday.settings import Settings
from matchday.storage.admin_repo import AdminRepository
from matchday.storage.db import make_pool, migrate
from tests.conftest import uid
from tests.fakes import ManualClock

pytestmark = pytest.mark.integration


@pytest.fixture
async def own_db(settings: Settings) -> AsyncIterator[Settings]:
    """A database of this test's own on the session's server: reseal reads every key row."""
    name = uid("reseal").lower()
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as c:
        await c.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(settings.database_url, dbname=name)
    migrate(url)
    yield type(settings)(**{**settings.payload(), "database_url": url})


@pytest.fixture
async def repo(own_db: Settings) -> AsyncIterator[AdminRepository]:
    pool = make_pool(own_db.database_url, max_size=4)
    await pool.open()
    try:
        yield AdminRepository(pool)
    finally:
        await pool.close()


CLOCK = ManualClock(1_800_000_000.0)  # each login a step later: a TOTP code is single-use


async def login(auth: AdminAuth, key: tuple[str, str]) -> str:
    api_key, totp_secret = key
    CLOCK.advance(30)
    code = pyotp.TOTP(totp_secret).at(CLOCK.now())
    return (await auth.authenticate(api_key, code)).key_id


async def test_rotating_the_secret_key_then_resealing_keeps_every_admin_key_working(
    own_db: Settings,
    repo: AdminRepository,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old_key, new_key = secrets.token_hex(32), secrets.token_hex(32)
    before, after = TotpSeal(old_key), TotpSeal(new_key)
    sealed_old = [(await AdminAuth(repo, seal=before).create_key(uid("ops")))[:2] for _ in range(2)]
    clear = (await AdminAuth(repo).create_key(uid("legacy")))[:2]  # stored before sealing
    stray = (await AdminAuth(repo, seal=TotpSeal(secrets.token_hex(32))).create_key("x"))[:2]
    rotated = AdminAuth(repo, CLOCK, seal=after)
    with pytest.raises(Unauthorized):  # the rotation alone locks the admins out
        await login(rotated, sealed_old[0])

    monkeypatch.setenv("MATCHDAY_DATABASE_URL", own_db.database_url)
    monkeypatch.setenv("MATCHDAY_DATA_DIR", str(own_db.data_dir))
    monkeypatch.setenv("MATCHDAY_SECRET_KEY", new_key)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # main() sets a default; keep ours
    monkeypatch.delenv("MATCHDAY_OLD_SECRET_KEY", raising=False)
    old_file = tmp_path / "old_key"
    old_file.write_text(old_key + "\n")

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(cli_main, ["admin", "reseal", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    code, _, err = await cli()
    assert code == 2 and "--old-key-file" in err  # no old key given: nothing touched
    code, out, err = await cli("--old-key-file", str(old_file))
    stray_id = stray[0].split("_")[1]
    assert code == 1 and stray_id in err and "neither key opens" in err, (out, err)
    assert "2 resealed, 1 sealed clear, 0 current, 1 unreadable" in out, out
    assert old_key not in out + err and new_key not in out + err
    for key in (*sealed_old, clear):
        assert await login(rotated, key) == key[0].split("_")[1]
    assert all(t.startswith("v1:") for _, t in await repo.totp_rows())
    audit = await repo.recent_audit(5, "key.reseal")
    assert audit and audit[0].outcome == "incomplete"

    # Again (say, after a partial run): nothing left to do but the stray row.
    code, out, _ = await cli("--old-key-file", str(old_file))
    assert code == 1 and "0 resealed, 0 sealed clear, 3 current, 1 unreadable" in out, out
    for key in (*sealed_old, clear):
        assert await login(rotated, key)


async def test_a_row_changed_while_resealing_is_not_overwritten(repo: AdminRepository) -> None:
    old, new = TotpSeal(secrets.token_hex(32)), TotpSeal(secrets.token_hex(32))
    api_key, totp_secret, _ = await AdminAuth(repo, seal=old).create_key(uid("ops"))
    key_id = api_key.split("_")[1]

    class Racing:
        async def totp_rows(self) -> list[tuple[str, str]]:
            rows = await repo.totp_rows()
            # Someone re-seals this key between our read and our write.
            await repo.replace_totp(key_id, rows[0][1], new.seal(key_id, totp_secret))
            return rows

        async def replace_totp(self, key_id: str, expected: str, stored: str) -> bool:
            return await repo.replace_totp(key_id, expected, stored)

    report = await reseal_all(Racing(), old, new)
    assert report.raced == [key_id] and not report.ok
    assert await login(AdminAuth(repo, CLOCK, seal=new), (api_key, totp_secret)) == key_id
