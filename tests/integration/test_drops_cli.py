"""``matchday drops`` against the test PostgreSQL and Redis: create, show, open, pause, rate,
close; every change in the audit log with the operator as client; refusals exit non-zero."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import pytest

from cluster.cli import main as cli_main
from matchday.inventory.records import SkuRow
from matchday.settings import Settings
from matchday.storage.admin_repo import AdminRepository
from matchday.storage.inventory_repo import InventoryRepository
from tests.conftest import uid
from tests.integration.shop_stack import ROUTER
from tests.unit.capacity_cases import profile

pytestmark = pytest.mark.integration


async def test_operators_run_a_drop_from_the_cli_and_every_change_is_audited(
    settings: Settings,
    repo: InventoryRepository,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MATCHDAY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MATCHDAY_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("MATCHDAY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("MATCHDAY_SECRET_KEY", secrets.token_hex(32))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # main() sets a default; keep ours

    async def cli(*argv: str) -> tuple[int, str, str]:
        # In a thread: the CLI runs its own event loop, as it does from a shell.
        code = await asyncio.to_thread(cli_main, ["drops", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    sku = uid("CLI").upper()
    await repo.create_skus([SkuRow(sku, 4, 0, 0)], ROUTER)
    code, out, _ = await cli("create", "--name", "Final", "--sku", sku, "--rate", "3")
    assert code == 0, out
    drop = json.loads(out)
    drop_id = drop["drop_id"]
    assert (drop["state"], drop["rate_per_s"], drop["skus"]) == ("scheduled", 3.0, [sku])
    for verb, state in (("open", "open"), ("pause", "paused"), ("resume", "open")):
        code, out, _ = await cli(verb, drop_id)
        assert (code, json.loads(out)["state"]) == (0, state)
    code, out, _ = await cli("rate", drop_id, "7.5")
    assert (code, json.loads(out)["rate_per_s"]) == (0, 7.5)
    code, out, _ = await cli("show", drop_id)
    shown = json.loads(out)
    assert (code, shown["available"], shown["queue"]["waiting"]) == (0, 4, 0)
    code, out, _ = await cli("list", "--limit", "200")
    assert drop_id in {d["drop_id"] for d in json.loads(out)}
    code, out, _ = await cli("close", drop_id)
    assert (code, json.loads(out)["state"]) == (0, "closed")
    code, _, err = await cli("open", drop_id)
    assert code == 1 and '"code": "conflict"' in err
    code, _, err = await cli("rate", drop_id, "-1")
    assert code == 2 and "refused" in err

    audit = AdminRepository(repo.pool)
    entries = [e for e in await audit.recent_audit(1000, None) if e.target == drop_id]
    assert [(e.action, e.outcome) for e in reversed(entries)] == [
        ("drop.open", "ok"), ("drop.pause", "ok"), ("drop.resume", "ok"), ("drop.rate", "ok"),
        ("drop.close", "ok"), ("drop.open", "conflict"),
    ]  # fmt: skip
    assert all(e.client.startswith("cli:") for e in entries)


async def test_rate_auto_comes_from_a_profile_and_is_refused_without_one(
    settings: Settings,
    repo: InventoryRepository,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("MATCHDAY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MATCHDAY_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("MATCHDAY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("MATCHDAY_SECRET_KEY", secrets.token_hex(32))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.delenv("MATCHDAY_CAPACITY_PROFILE", raising=False)

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(cli_main, ["drops", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    good, bad = tmp_path / "profile.json", tmp_path / "bad.json"
    good.write_text(profile().to_json())
    bad.write_text("{not json")
    sku = uid("CLI").upper()
    await repo.create_skus([SkuRow(sku, 4, 0, 0)], ROUTER)
    create = ("create", "--name", "Final", "--sku", sku, "--rate", "auto")
    missing = str(tmp_path / "none.json")
    for extra, why in (((), "needs a capacity profile"), (("--profile", str(bad)), "not JSON"),
                       (("--profile", missing), "cannot read profile")):  # fmt: skip
        code, out, err = await cli(*create, *extra)
        assert (code, out) == (2, "") and why in err, err
    code, out, _ = await cli(*create, "--profile", str(good))
    assert code == 0, out
    drop = json.loads(out)
    assert drop["rate_per_s"] == 350.0 and drop["rate_source"].startswith("auto: profile")
    code, out, _ = await cli("rate", drop["drop_id"], "2")
    assert (code, json.loads(out)["rate_source"]) == (0, "operator")
    code, _, err = await cli("rate", drop["drop_id"], "auto")
    assert code == 2 and "needs a capacity profile" in err
    monkeypatch.setenv("MATCHDAY_CAPACITY_PROFILE", str(good))  # the stack's setting
    code, out, _ = await cli("rate", drop["drop_id"], "auto")
    assert (code, json.loads(out)["rate_per_s"]) == (0, 350.0)
    with pytest.raises(SystemExit) as exited:  # argparse's own refusal
        await cli("rate", drop["drop_id"], "fast")
    assert exited.value.code == 2
    entries = [e for e in await AdminRepository(repo.pool).recent_audit(1000, "drop.rate")
               if e.target == drop["drop_id"]]  # fmt: skip
    assert [e.params["rate_per_s"] for e in reversed(entries)] == [2.0, "auto"]
