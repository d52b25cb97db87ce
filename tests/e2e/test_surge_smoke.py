"""A short match-day surge with Locust against the Serve stack, then the post-run audit.

Locust runs as a subprocess (gevent monkey-patches everything it imports; pytest, asyncio
and Ray must not share a process with it), loopback only, bounded by its stage table and a
timeout. The audit is scoped to this test's SKUs: the session's database is shared.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from loadtests.acks import Ack, AckJournal, read_acks
from loadtests.audit import run_audit, summary
from loadtests.audit_checks import Scope
from matchday import bootstrap
from matchday.admin.auth import AdminAuth
from matchday.catalog.models import CategoryIn, ProductIn, VariantIn
from matchday.inventory.routing import Router
from matchday.storage.admin_repo import AdminRepository
from matchday.storage.db import make_pool
from tests.conftest import uid
from tests.e2e.conftest import Served

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SURGE_S = 16  # the compressed match day below; the subprocess timeout bounds it too


@dataclass
class Surge:
    prefix: str
    hot: str
    regular: list[str]
    admin_key: str
    admin_totp: str


async def surge_catalog(served: Served) -> Surge:
    """A product with a limited size (10 units, 2 per fan), two plentiful ones, an admin."""
    s = served.settings
    prefix = uid("SURGE").upper()
    slug = prefix.lower()
    hot, regular = f"{prefix}-LTD", [f"{prefix}-M", f"{prefix}-L"]
    ctx = await bootstrap.open_shop(s)
    try:
        await ctx.catalog.put_category(CategoryIn(slug="jerseys", name="Jerseys"))
        await ctx.catalog.create_product(
            ProductIn(
                slug=slug, name=f"Final {slug}", category="jerseys", price_cents=12999,
                image_url=f"/static/img/{slug}.svg", per_customer_limit=2,
                variants=[
                    VariantIn(sku=hot, size="XS", initial_stock=10),
                    *(VariantIn(sku=sku, size=sku[-1], initial_stock=200) for sku in regular),
                ],
            ),
            Router(s.shards, s.dedicated_shards),
        )  # fmt: skip
        pool = make_pool(s.database_url)
        await pool.open()
        try:
            api_key, totp, _ = await AdminAuth(AdminRepository(pool)).create_key("surge-smoke")
        finally:
            await pool.close()
    finally:
        await ctx.close()
    return Surge(prefix, hot, regular, api_key, totp)


def run_locust(served: Served, out: Path, surge: Surge) -> int:
    env = {
        **os.environ,
        "MATCHDAY_LT_HOT_SKU": surge.hot,
        "MATCHDAY_LT_SKUS": ",".join(surge.regular),
        "MATCHDAY_LT_SLUGS": surge.prefix.lower(),
        "MATCHDAY_LT_PEAK_USERS": "8",
        "MATCHDAY_LT_TIME_SCALE": f"{SURGE_S / 660:.4f}",  # MATCH_DAY's 660 s in SURGE_S
        "MATCHDAY_LT_THINK_SCALE": "0.2",
        "MATCHDAY_LT_ACK_DIR": str(out / "acks"),
        "MATCHDAY_LT_ADMIN_KEY": surge.admin_key,
        "MATCHDAY_LT_ADMIN_TOTP": surge.admin_totp,
        "MATCHDAY_LT_RESTOCK_QTY": "3",
    }
    cmd = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "matchday.py"),
        "--headless", "--host", served.base,
        "--csv", str(out / "surge"), "--html", str(out / "surge.html"),
        "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    done = subprocess.run(
        cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=SURGE_S + 60
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: some request failed
    return done.returncode


def aggregated(out: Path) -> dict[str, str]:
    with (out / "surge_stats.csv").open() as f:
        return next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")


async def test_a_short_match_day_surge_leaves_nothing_for_the_audit_to_find(
    served: Served, tmp_path: Path
) -> None:
    surge = await surge_catalog(served)
    prefix, hot = surge.prefix, surge.hot
    run_locust(served, tmp_path, surge)

    assert "<html" in (tmp_path / "surge.html").read_text()[:2000].lower()  # the HTML report
    stats = aggregated(tmp_path)
    requests, failures = int(stats["Request Count"]), int(stats["Failure Count"])
    assert requests > 50, stats
    assert failures <= requests * 0.05, stats
    acks = list(read_acks([tmp_path / "acks"]))
    adds = [a for a in acks if a.kind == "add"]
    assert adds, "no add-to-cart was acknowledged"
    assert {a.sku for a in adds} <= {hot, *surge.regular}
    print(f"surge: {requests} requests, {failures} failed, {len(adds)} adds acknowledged")

    findings = run_audit(served.settings.database_url, [tmp_path / "acks"], Scope(f"{prefix}-%"))
    assert all(f.ok for f in findings), summary(findings)
    assert {f.check: f.checked for f in findings}["acks"] == len(acks)

    # The same audit over a journal that claims one more acknowledgement must fail.
    forged = tmp_path / "forged"
    shutil.copytree(tmp_path / "acks", forged)
    journal = AckJournal(forged)
    journal.append(Ack("add", "r-forged", hot, 1, "c_0", "nobody", time.time()))
    journal.close()
    bad = run_audit(served.settings.database_url, [forged], Scope(f"{prefix}-%"))
    assert [f.check for f in bad if not f.ok] == ["acks"]
