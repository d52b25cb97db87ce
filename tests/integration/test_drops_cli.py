"""``matchday drops`` against the test PostgreSQL and Redis: create, show, open, pause, rate,
close; every change in the audit log with the operator as client; refusals exit non-zero."""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest

from cluster.cli import main as cli_main
from matchday.inventory.records import SkuRow
from matchday.settings import Settings
from matchday.storage.admin_repo import AdminRepository
from matchday.storage.inventory_repo import InventoryRepository
from tests.conftest import uid
from tests.integration.shop_stack import ROUTER

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
