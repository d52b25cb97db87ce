"""Encrypted backups on the real embedded PostgreSQL: a backup restored into a fresh database
holds the same rows table by table; a wrong key, a changed byte, a truncated file and a
non-empty target are refused before anything is written; the drill passes and reports; the
key shows up nowhere; and ``matchday backup | restore | drill`` run in-process."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

import matchday.ops.backup as backup_module
from cluster.cli import main as cli_main
from matchday.inventory.records import SkuRow
from matchday.inventory.routing import Router
from matchday.ops.backup import TargetNotEmpty, backup, drill, restore
from matchday.ops.crypto import EncryptedWriter, Tampered, WrongKey, open_backup
from matchday.ops.pgtools import fingerprints
from matchday.settings import Settings
from matchday.storage.inventory_repo import InventoryRepository
from tests.conftest import uid

pytestmark = pytest.mark.integration


@pytest.fixture
def key() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture
def fresh_db(settings: Settings) -> Iterator[str]:
    """A new, empty database on the test server; dropped afterwards."""
    name = uid("restore").replace("-", "_")
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield make_conninfo(settings.database_url, dbname=name)
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
async def skus(repo: InventoryRepository) -> dict[str, SkuRow]:
    """SKUs written through the real repository: what a restore must bring back."""
    rows = [
        SkuRow(uid("BK"), on_hand=10 + i, reserved=i % 3, sold=i % 2, per_customer_limit=2)
        for i in range(25)
    ]
    assert await repo.create_skus(rows, Router(2, 1)) == len(rows)
    return {r.sku: r for r in rows}


def _stock(url: str, skus: list[str]) -> dict[str, tuple[int, ...]]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(
            "SELECT sku, on_hand, reserved, sold, per_customer_limit FROM inventory"
            " WHERE sku = ANY(%s)",
            (skus,),
        )
        return {row[0]: tuple(row[1:]) for row in cur.fetchall()}


def _tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname NOT IN"
            " ('pg_catalog', 'information_schema')"
        )
        return [row[0] for row in cur.fetchall()]


def test_a_backup_restored_into_a_fresh_database_has_every_row_and_checksum(
    settings: Settings, skus: dict[str, SkuRow], fresh_db: str, key: str, tmp_path: Path
) -> None:
    path = tmp_path / "shop.mdbk"
    header = backup(settings.database_url, path, key)
    report = restore(path, fresh_db, key)

    assert report.ok, report.problems
    assert set(report.tables) == set(header["tables"])
    for name, want in header["tables"].items():
        assert (report.tables[name]["rows"], report.tables[name]["checksum"]) == (
            want["rows"],
            want["checksum"],
        )
    assert header["tables"]["public.inventory"]["rows"] >= len(skus)
    # Checked independently of our own fingerprints too: the rows themselves came back.
    restored = _stock(fresh_db, list(skus))
    assert restored == {
        s: (r.on_hand, r.reserved, r.sold, r.per_customer_limit) for s, r in skus.items()
    }
    with psycopg.connect(fresh_db) as conn:
        assert fingerprints(conn) == header["tables"]


def test_the_backup_holds_exactly_its_snapshot_while_the_shop_keeps_writing(
    settings: Settings,
    skus: dict[str, SkuRow],
    fresh_db: str,
    key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    late = uid("LATE")
    real_dump = backup_module._dump

    def dump_after_a_write(*args: Any, **kwargs: Any) -> None:
        # A sale commits between the checksums and pg_dump's start: neither may see it.
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO inventory (sku, shard_id, on_hand) VALUES (%s, 0, 5)", (late,)
            )
        real_dump(*args, **kwargs)

    monkeypatch.setattr(backup_module, "_dump", dump_after_a_write)
    path = tmp_path / "during-writes.mdbk"
    header = backup(settings.database_url, path, key)
    report = restore(path, fresh_db, key)

    assert report.ok, report.problems
    assert _stock(settings.database_url, [late]) == {late: (5, 0, 0, None)}
    assert _stock(fresh_db, [late]) == {}
    assert set(_stock(fresh_db, list(skus))) == set(skus)
    assert report.tables["public.inventory"]["rows"] == header["tables"]["public.inventory"]["rows"]


def test_a_wrong_key_is_refused_before_the_target_is_touched(
    settings: Settings, fresh_db: str, key: str, tmp_path: Path
) -> None:
    path = tmp_path / "shop.mdbk"
    backup(settings.database_url, path, key)
    other = secrets.token_urlsafe(32)

    with pytest.raises(WrongKey, match="wrong backup key") as refused:
        restore(path, fresh_db, other)

    assert other not in str(refused.value) and key not in str(refused.value)
    assert _tables(fresh_db) == []


@pytest.mark.parametrize(
    ("damage", "refusal", "message"),
    [
        # A changed file id derives another key check: it reads as a wrong key, refused too.
        ("flip a byte of the file id", WrongKey, "wrong backup key"),
        ("flip a byte of the header", Tampered, "frame 0 fails authentication"),
        ("flip the last byte", Tampered, "fails authentication"),
        ("truncate", Tampered, "truncated"),
        ("append a byte", Tampered, "data after its last frame"),
    ],
)
def test_a_modified_or_cut_file_is_refused_before_the_target_is_touched(
    settings: Settings,
    fresh_db: str,
    key: str,
    tmp_path: Path,
    damage: str,
    refusal: type[Exception],
    message: str,
) -> None:
    path = tmp_path / "shop.mdbk"
    backup(settings.database_url, path, key)
    data = bytearray(path.read_bytes())
    if damage == "flip a byte of the file id":
        data[12] ^= 0x01
    elif damage == "flip a byte of the header":
        data[60] ^= 0x01
    elif damage == "flip the last byte":
        data[-1] ^= 0x80
    elif damage == "truncate":
        del data[-100:]
    else:
        data += b"\x00"
    path.write_bytes(bytes(data))

    with pytest.raises(refusal, match=message):
        restore(path, fresh_db, key)
    assert _tables(fresh_db) == []


def test_a_restore_into_a_database_with_tables_is_refused_unless_forced(
    settings: Settings, skus: dict[str, SkuRow], fresh_db: str, key: str, tmp_path: Path
) -> None:
    path = tmp_path / "shop.mdbk"
    backup(settings.database_url, path, key)
    assert restore(path, fresh_db, key).ok
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE inventory SET on_hand = on_hand + 1000 WHERE sku = ANY(%s)", (list(skus),)
        )

    with pytest.raises(TargetNotEmpty, match=r"not empty.*--force"):
        restore(path, fresh_db, key)
    assert {s: v[0] for s, v in _stock(fresh_db, list(skus)).items()} == {
        s: r.on_hand + 1000 for s, r in skus.items()
    }  # untouched

    report = restore(path, fresh_db, key, force=True)
    assert report.ok, report.problems
    assert {s: v[0] for s, v in _stock(fresh_db, list(skus)).items()} == {
        s: r.on_hand for s, r in skus.items()
    }


def test_a_restore_whose_rows_differ_from_the_header_fails_its_report(
    settings: Settings, fresh_db: str, key: str, tmp_path: Path
) -> None:
    good = tmp_path / "shop.mdbk"
    backup(settings.database_url, good, key)
    # Someone holding the key re-seals the same dump under a header that claims one row more.
    with open(good, "rb") as src:
        header, chunks = open_backup(src, key)
        dump = b"".join(chunks)
    header["tables"]["public.inventory"]["rows"] += 1
    lying = tmp_path / "lying.mdbk"
    with open(lying, "wb") as out:
        writer = EncryptedWriter(out, key, header)
        writer.write(dump)
        writer.close()

    report = restore(lying, fresh_db, key)

    assert not report.ok
    assert report.problems == [
        f"public.inventory: {header['tables']['public.inventory']['rows'] - 1} rows,"
        f" expected {header['tables']['public.inventory']['rows']}"
    ]
    assert report.lines()[-1] == "FAIL"


def test_the_drill_restores_into_a_scratch_database_reports_and_drops_it(
    settings: Settings, skus: dict[str, SkuRow], key: str
) -> None:
    messages: list[str] = []
    report = drill(settings.database_url, key, messages.append)

    assert report.ok, report.problems
    assert report.database.startswith("matchday_drill_")
    assert report.tables["public.inventory"]["rows"] >= len(skus)
    assert all(t["match"] for t in report.tables.values())
    assert report.lines()[-1] == "PASS: every row count and checksum matches"
    assert any(m.startswith("wrote ") for m in messages)
    assert any(m.startswith("verified public.inventory:") for m in messages)
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (report.database,)
        )
        assert row.fetchone() == (0,)


@pytest.fixture
def cli_env(settings: Settings, key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MATCHDAY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MATCHDAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MATCHDAY_BACKUP_KEY", key)
    # main() defaults this for joining a stack's Ray; keep the test session's own choice.
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    return key


def test_the_cli_backs_up_restores_refuses_a_second_restore_and_drills(
    cli_env: str, fresh_db: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.mdbk"
    assert cli_main(["backup", "--out", str(out)]) == 0
    stdout, stderr = capfd.readouterr()
    summary = json.loads(stdout)
    assert summary["path"] == str(out) and summary["bytes"] == out.stat().st_size
    assert summary["tables"] > 20 and "wrote" in stderr
    assert out.stat().st_mode & 0o077 == 0  # readable by its owner only

    assert cli_main(["restore", str(out), "--database-url", fresh_db]) == 0
    stdout, stderr = capfd.readouterr()
    assert stdout.strip().endswith("PASS: every row count and checksum matches")
    assert "authenticated" in stderr and "verified public.inventory" in stderr

    assert cli_main(["restore", str(out), "--database-url", fresh_db]) == 1
    stdout, stderr = capfd.readouterr()
    assert "not empty" in stderr and stdout == ""

    assert cli_main(["drill"]) == 0
    stdout, stderr = capfd.readouterr()
    assert "PASS" in stdout and "dropped scratch database" in stderr


def test_the_cli_writes_to_the_data_directory_by_default_and_needs_a_key(
    cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["backup"]) == 0
    written = json.loads(capfd.readouterr().out)["path"]
    assert Path(written).parent == tmp_path / "data" / "backups"
    assert (tmp_path / "data" / "backups").stat().st_mode & 0o077 == 0

    monkeypatch.setenv("MATCHDAY_BACKUP_KEY", "")
    with pytest.raises(SystemExit, match="MATCHDAY_BACKUP_KEY is not set"):
        cli_main(["backup"])


def test_the_key_never_appears_in_the_file_the_output_or_the_logs(
    cli_env: str,
    fresh_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = cli_env
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "secret.mdbk"
    codes = [
        cli_main(["backup", "--out", str(out)]),
        cli_main(["restore", str(out), "--database-url", fresh_db]),
        cli_main(["restore", str(out), "--database-url", fresh_db]),  # refused: not empty
        cli_main(["drill"]),
    ]
    monkeypatch.setenv("MATCHDAY_BACKUP_KEY", secrets.token_urlsafe(32))
    codes.append(cli_main(["restore", str(out), "--database-url", fresh_db, "--force"]))
    short = "too-short-" + secrets.token_hex(4)
    monkeypatch.setenv("MATCHDAY_BACKUP_KEY", short)
    codes.append(cli_main(["drill"]))  # refused by settings validation

    stdout, stderr = capfd.readouterr()
    assert codes == [0, 0, 1, 0, 1, 2]
    assert "wrong backup key" in stderr and "backup_key must be at least 32" in stderr
    for secret in (key, short):
        assert secret not in stdout and secret not in stderr
        assert secret not in caplog.text
        assert secret.encode() not in out.read_bytes()
    assert key.encode() not in b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
