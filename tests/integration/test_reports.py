"""Merchandisers' reports on real PostgreSQL: the materialized views of 006_reports.sql
filled through the real repositories (catalogue, inventory shard, shop, payments), refreshed
concurrently, written as CSV and PNG, run from the CLI, and read from a real streaming
replica of an embedded PostgreSQL.

The database is shared with the other tests, so every test looks only at its own rows
(random SKUs, products, gateways, accounts and kinds).
"""

from __future__ import annotations

import asyncio
import csv
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from cluster.cli import main as cli_main
from matchday.bootstrap import open_reports
from matchday.catalog.models import CategoryIn, ProductIn, VariantIn
from matchday.embedded import EmbeddedPostgres, EmbeddedRedis
from matchday.inventory.commands import Commit, ReservationView, Reserve
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.reports.output import write_csv, write_png
from matchday.reports.reader import reader_url
from matchday.reports.registry import REPORTS, run_report
from matchday.reports.schedule import refresh_every
from matchday.settings import Settings
from matchday.shop.models import Order
from matchday.storage.catalog_repo import CatalogRepository
from matchday.storage.db import make_pool, migrate
from matchday.storage.inventory_repo import InventoryRepository
from matchday.storage.payments_repo import PaymentsRepository
from matchday.storage.reports_repo import ReportsRepository
from matchday.storage.shop_repo import ShopRepository
from tests.conftest import uid

pytestmark = pytest.mark.integration

ROUTER = Router(1, 1)  # every unpinned SKU on shard 0
HOUR = 3600.0
DAY = 24 * HOUR
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Repos:
    pool: AsyncConnectionPool
    reports: ReportsRepository
    catalog: CatalogRepository
    inventory: InventoryRepository
    shop: ShopRepository
    payments: PaymentsRepository


@pytest.fixture
async def repos(settings: Settings) -> AsyncIterator[Repos]:
    pool = make_pool(settings.database_url, max_size=4, name="reports-test")
    await pool.open()
    try:
        yield Repos(
            pool,
            ReportsRepository(pool),
            CatalogRepository(pool),
            InventoryRepository(pool),
            ShopRepository(pool),
            PaymentsRepository(pool),
        )
    finally:
        await pool.close()


def _slug() -> str:
    return uid("p").lower()


def _sku() -> str:
    return uid("R").upper()


async def make_product(r: Repos, stocks: list[int]) -> tuple[str, list[str]]:
    category = _slug()
    await r.catalog.put_category(CategoryIn(slug=category, name="Reports"))
    slug, skus = _slug(), [_sku() for _ in stocks]
    await r.catalog.create_product(
        ProductIn(
            slug=slug,
            name=f"Shirt {slug}",
            category=category,
            price_cents=5000,
            image_url="/img/shirt.png",
            variants=[
                VariantIn(sku=s, size=f"S{i}", initial_stock=n)
                for i, (s, n) in enumerate(zip(skus, stocks, strict=True))
            ],
        ),
        ROUTER,
    )
    return slug, skus


async def sell(r: Repos, sku: str, qty: int, ago_s: float) -> None:
    """Reserve and commit ``qty`` units through the shard, then date the sale ``ago_s`` back.

    The engine stamps ``closed_at`` with the database's now() (not its injected clock), so a
    sale in the past is the only thing written here by hand: the row itself is the engine's.
    """
    core = ShardCore(0, ROUTER, r.inventory)
    await core.start()
    (held,) = await core.apply([Reserve(uid("rq"), sku, qty, uid("cart"), uid("cust"), 600)])
    view = held.unwrap()
    assert isinstance(view, ReservationView)
    rid = view.reservation_id
    commit_id = uid("rq")
    (done,) = await core.apply([Commit(commit_id, sku, rid, uid("order"))])
    done.unwrap()
    async with r.pool.connection() as conn:
        await conn.execute(
            "UPDATE reservations SET closed_at = now() - make_interval(secs => %s),"
            " created_at = now() - make_interval(secs => %s) WHERE reservation_id = %s",
            (ago_s, ago_s + 60, rid),
        )
    await backdate(r, commit_id, ago_s)


async def backdate(r: Repos, request_id: str, ago_s: float) -> None:
    """Date a journaled mutation back: the journal is the stock history turnover reads.

    The journal dates a batch as a whole (010); each mutation here is a batch of its own.
    A database before 010 (test_009_...) has one row per mutation.
    """
    async with r.pool.connection() as conn:
        row = await (await conn.execute("SELECT to_regclass('inventory_batches')")).fetchone()
        cur = await conn.execute(
            "UPDATE inventory_batches SET at = now() - make_interval(secs => %s)"
            " WHERE id = (SELECT batch FROM inventory_journal WHERE request_id = %s)"
            if row and row[0]
            else "UPDATE inventory_journal SET at = now() - make_interval(secs => %s)"
            " WHERE request_id = %s",
            (ago_s, request_id),
        )
        assert cur.rowcount == 1


async def hold(r: Repos, sku: str, qty: int) -> None:
    core = ShardCore(0, ROUTER, r.inventory)
    await core.start()
    (held,) = await core.apply([Reserve(uid("rq"), sku, qty, uid("cart"), uid("cust"), 600)])
    held.unwrap()


async def make_order(r: Repos) -> str:
    cart, customer, order_id = uid("cart"), uid("cust"), uid("order")
    await r.shop.create_cart(cart, customer)
    now = time.time()
    order = Order(
        order_id, cart, customer, "payment_pending", 5000, "EUR", "tok_visa", 0, None, None,
        None, None, now, now,
    )  # fmt: skip
    await r.shop.create_order(order, uid("idem"))
    return order_id


async def test_sales_velocity_counts_committed_units_per_sku_and_product(repos: Repos) -> None:
    slug, (a, b) = await make_product(repos, [100, 100])
    await sell(repos, a, 3, ago_s=HOUR)
    await sell(repos, a, 1, ago_s=30 * HOUR)
    await sell(repos, b, 2, ago_s=2 * HOUR)
    await sell(repos, b, 4, ago_s=3 * DAY)
    await hold(repos, a, 5)  # held, not sold: never counted
    await repos.reports.refresh()

    skus = {v.sku: v for v in await repos.reports.sku_velocity(100_000)}
    assert (skus[a].units_24h, skus[a].units_7d, skus[a].product_id) == (3, 4, slug)
    assert skus[a].units_per_hour == pytest.approx(3 / 24, abs=1e-4)
    assert skus[a].units_per_day == pytest.approx(4 / 7, abs=1e-4)
    assert (skus[b].units_24h, skus[b].units_7d) == (2, 6)
    (product,) = [p for p in await repos.reports.product_velocity(100_000) if p.product_id == slug]
    assert (product.units_24h, product.units_7d, product.name) == (5, 10, f"Shirt {slug}")
    assert product.units_per_day == pytest.approx(10 / 7, abs=1e-4)


async def test_trending_compares_the_last_24_hours_with_the_24_before(repos: Repos) -> None:
    rising, (a,) = await make_product(repos, [100])
    falling, (b,) = await make_product(repos, [100])
    new, (c,) = await make_product(repos, [100])
    await sell(repos, a, 6, ago_s=HOUR)
    await sell(repos, a, 2, ago_s=36 * HOUR)
    await sell(repos, a, 9, ago_s=3 * DAY)  # older than both windows
    await sell(repos, b, 1, ago_s=HOUR)
    await sell(repos, b, 4, ago_s=30 * HOUR)
    await sell(repos, c, 2, ago_s=HOUR)
    await repos.reports.refresh()

    rows = {t.product_id: t for t in await repos.reports.trending(100_000)}
    assert (rows[rising].units_now, rows[rising].units_before, rows[rising].change) == (6, 2, 4)
    assert rows[rising].growth == pytest.approx(3.0)
    assert rows[falling].change == -3
    assert rows[falling].growth == pytest.approx(0.25)
    assert (rows[new].units_now, rows[new].growth) == (2, None)
    order = [t.product_id for t in await repos.reports.trending(100_000)]
    assert order.index(new) < order.index(rising) < order.index(falling)


async def test_dead_stock_is_units_on_hand_with_no_sale_in_30_days(repos: Repos) -> None:
    # Turnover's tests are in test_reports_turnover.py.
    _, (fast, never, stale) = await make_product(repos, [100, 10, 10])
    await sell(repos, fast, 4, ago_s=DAY)
    await sell(repos, stale, 2, ago_s=40 * DAY)
    await repos.reports.refresh()

    dead = {d.sku: d for d in await repos.reports.dead_stock(1_000_000)}
    assert fast not in dead
    assert (dead[never].units_on_hand, dead[never].last_sold_at, dead[never].days_since_sale) == (
        10,
        None,
        None,
    )
    assert (dead[stale].units_on_hand, dead[stale].days_since_sale) == (8, 40)


async def test_payment_success_is_per_gateway_and_region(repos: Repos) -> None:
    gateway, other = uid("gw"), uid("gw")
    outcomes = [(gateway, "succeeded"), (gateway, "succeeded"), (gateway, "declined"),
                (gateway, "started"), (other, "declined")]  # fmt: skip
    for gw, status in outcomes:
        await repos.payments.record(await make_order(repos), 1, gw, status)
    eu = PaymentsRepository(repos.payments.pool, region="eu-west")
    await eu.record(await make_order(repos), 1, gateway, "succeeded")
    await repos.reports.refresh()

    rows = {(p.gateway, p.region): p for p in await repos.reports.payment_success(1_000_000)}
    mine = rows[(gateway, "local")]  # the repository's default region
    assert (mine.attempts, mine.succeeded, mine.declined, mine.pending) == (4, 2, 1, 1)
    assert mine.success_rate == pytest.approx(2 / 3, abs=1e-4)
    assert (rows[(other, "local")].attempts, rows[(other, "local")].success_rate) == (1, 0.0)
    assert (rows[(gateway, "eu-west")].attempts, rows[(gateway, "eu-west")].succeeded) == (1, 1)


async def test_chargebacks_and_suspicious_activity_are_counted(repos: Repos) -> None:
    account, kind = uid("acct"), uid("kind")
    for reason, amount, status in [("fraudulent", 5000, "lost"), ("fraudulent", 2500, None),
                                   ("duplicate", 1000, "won")]:  # fmt: skip
        await repos.payments.dispute(
            uid("dp"), account, charge_id=None, intent_id=None, order_id=None,
            amount_cents=amount, reason=reason, status=status,
        )  # fmt: skip
    customers = [uid("cust"), uid("cust")]
    for customer in [customers[0], customers[0], customers[1]]:
        await repos.payments.suspicious(kind, uid("order"), customer, {"rule": "velocity"})
    await repos.reports.refresh()

    chargebacks = {(c.account, c.reason): c for c in await repos.reports.chargebacks(1_000_000)}
    fraud = chargebacks[(account, "fraudulent")]
    assert (fraud.disputes, fraud.amount_cents, fraud.lost, fraud.open) == (2, 7500, 1, 1)
    assert (chargebacks[(account, "duplicate")].won, chargebacks[(account, "duplicate")].open) == (
        1,
        0,
    )
    (signal,) = [s for s in await repos.reports.suspicious(1_000_000) if s.kind == kind]
    assert (signal.events, signal.customers, signal.orders) == (3, 2, 3)


async def open_poll_on(repos: Repos, sku: str) -> None:
    """An open poll with one option on ``sku``: poll-demand lists it, voted on or not."""
    poll_id = "p_" + uid("").lower().translate(str.maketrans("0189", "abcd")).strip("_-")
    async with repos.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO polls (poll_id, question, placement) VALUES (%s, 'Which?', 'checkout')",
            (poll_id,),
        )
        await conn.execute(
            "INSERT INTO poll_options (poll_id, option_id, position, label, sku)"
            " VALUES (%s, 'o1', 1, 'This one', %s)",
            (poll_id, sku),
        )


async def test_every_report_writes_a_csv_and_a_png(repos: Repos, tmp_path: Path) -> None:
    _, (sku,) = await make_product(repos, [50])
    await sell(repos, sku, 7, ago_s=HOUR)
    await open_poll_on(repos, sku)
    await repos.reports.refresh()
    for name, report in REPORTS.items():
        rows = await run_report(repos.reports, name, limit=30)
        assert rows, name  # every report has rows from this and earlier tests
        write_csv(rows, tmp_path / f"{name}.csv")
        write_png(rows, report.chart, tmp_path / f"{name}.png")
        with (tmp_path / f"{name}.csv").open() as f:
            lines = list(csv.reader(f))
        assert len(lines) == len(rows) + 1
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
    velocity = (tmp_path / "velocity.csv").read_text()
    assert f"{sku},".lower() in velocity.lower()
    write_png([], REPORTS["payments"].chart, tmp_path / "empty.png")  # "no data", still a PNG
    assert (tmp_path / "empty.png").read_bytes()[:8] == PNG_MAGIC


async def test_a_scheduled_refresh_runs_until_stopped(repos: Repos) -> None:
    _, (sku,) = await make_product(repos, [20])
    stop = asyncio.Event()
    loop = asyncio.create_task(refresh_every(repos.reports, 0.05, stop=stop))
    await sell(repos, sku, 2, ago_s=60)
    deadline = time.monotonic() + 20
    while not [v for v in await repos.reports.sku_velocity(1_000_000) if v.sku == sku]:
        assert time.monotonic() < deadline, "the loop never refreshed the sale in"
        await asyncio.sleep(0.05)
    stop.set()
    assert await asyncio.wait_for(loop, 10) >= 1


@pytest.fixture
def cli_env(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MATCHDAY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MATCHDAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MATCHDAY_REPORTS_DATABASE_URL", raising=False)
    return tmp_path


def test_the_cli_refreshes_and_writes_a_report(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_csv, out_png = cli_env / "dead.csv", cli_env / "dead.png"
    argv = ["report", "dead-stock", "--refresh", "--csv", str(out_csv), "--png", str(out_png)]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("sku ") and f"to {out_csv}" in printed
    assert out_csv.read_text().startswith("sku,product_id,units_on_hand,")
    assert out_png.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(SystemExit):
        cli_main(["report", "no-such-report"])


# -- a real streaming replica --------------------------------------------------------------


def _psql_ok(url: str, sql: str) -> Any:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(sql).fetchone()
    return None if row is None else row[0]


def _wait(what: str, check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except psycopg.OperationalError:
            pass  # not accepting connections yet
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def primary_and_replica(data_dir: Path) -> Iterator[tuple[EmbeddedPostgres, EmbeddedPostgres]]:
    primary = EmbeddedPostgres(data_dir / uid("primary"), settings={"max_connections": "50"})
    primary.start()
    replica: EmbeddedPostgres | None = None
    try:
        migrate(primary.url)
        # wal_level=replica and max_wal_senders=10 are PostgreSQL 16's defaults; initdb's
        # pg_hba.conf already trusts local replication connections, say so if it ever stops.
        hba = (primary.pgdata / "pg_hba.conf").read_text()
        assert any(
            line.split()[:2] == ["local", "replication"]
            for line in hba.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ), hba
        replica = EmbeddedPostgres(data_dir / uid("replica"), settings={"max_connections": "50"})
        replica._prepare()  # the data directory and socket, owned by the server's user
        assert primary.socket_dir is not None
        # -R writes standby.signal and primary_conninfo (the primary's socket): the copy
        # starts as a streaming standby. -X stream ships the WAL written meanwhile.
        kwargs: dict[str, Any] = {"user": replica._user} if replica._user else {}
        subprocess.run(  # the bundled pg_basebackup, fixed arguments
            [
                str(primary.tool("pg_basebackup")),
                "-h", str(primary.socket_dir), "-U", "postgres",
                "-D", str(replica.pgdata), "-R", "-X", "stream", "-c", "fast",
            ],
            check=True, timeout=120, capture_output=True, **kwargs,
        )  # fmt: skip
        replica.start()  # PG_VERSION exists, so no initdb: it starts as the standby
        _wait(
            "the replica to be in recovery",
            lambda: _psql_ok(replica.url, "SELECT pg_is_in_recovery()"),
        )
        yield primary, replica
    finally:
        if replica is not None:
            replica.stop("immediate")
        primary.stop("immediate")


async def test_reports_are_read_from_a_streaming_replica(
    primary_and_replica: tuple[EmbeddedPostgres, EmbeddedPostgres], settings: Settings
) -> None:
    primary, replica = primary_and_replica
    s = settings.model_copy(
        update={"database_url": primary.url, "reports_database_url": replica.url}
    )
    assert reader_url(s) == replica.url
    pool = make_pool(primary.url, max_size=2, name="reports-primary-test")
    await pool.open()
    try:
        r = Repos(
            pool,
            ReportsRepository(pool),
            CatalogRepository(pool),
            InventoryRepository(pool),
            ShopRepository(pool),
            PaymentsRepository(pool),
        )
        slug, (sku,) = await make_product(r, [30])
        await sell(r, sku, 5, ago_s=HOUR)
        async with open_reports(s) as reports:
            assert await reports.reader.replaying()
            assert not await reports.primary.replaying()
            await reports.primary.refresh()
            # Wait until the replica has replayed everything the primary wrote so far.
            lsn = _psql_ok(primary.url, "SELECT pg_current_wal_lsn()::text")
            await asyncio.to_thread(
                _wait,
                "the replica to replay the refresh",
                lambda: _psql_ok(
                    replica.url,
                    f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn",
                ),
            )
            rows = [v for v in await reports.reader.product_velocity() if v.product_id == slug]
            assert [(v.units_24h, v.units_7d) for v in rows] == [(5, 5)]
            # The replica refuses writes: refreshing has to go to the primary.
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                await reports.reader.refresh()
    finally:
        await pool.close()


async def test_the_event_publisher_refreshes_the_reports(
    own_postgres: EmbeddedPostgres, own_redis: EmbeddedRedis, settings: Settings
) -> None:
    from actors.publisher import EventPublisher

    pool = make_pool(own_postgres.url, max_size=2, name="reports-publisher-test")
    await pool.open()
    r = Repos(
        pool,
        ReportsRepository(pool),
        CatalogRepository(pool),
        InventoryRepository(pool),
        ShopRepository(pool),
        PaymentsRepository(pool),
    )
    s = settings.model_copy(update={"database_url": own_postgres.url, "redis_url": own_redis.url})
    publisher = EventPublisher(s.model_dump(mode="json"))
    try:
        _, (sku,) = await make_product(r, [10])
        await sell(r, sku, 3, ago_s=60)
        await publisher.start()  # its first refresh runs at once
        deadline = time.monotonic() + 30
        while not [v for v in await r.reports.sku_velocity() if v.sku == sku]:
            assert time.monotonic() < deadline, "the publisher never refreshed the reports"
            await asyncio.sleep(0.1)
    finally:
        await publisher.close()
        await pool.close()
