"""The post-run audit on real PostgreSQL: a consistent shop passes, and each deliberately
corrupted row is caught by the check that owns it (and only by the checks that should).

Each test gets a database of its own, copied from a migrated template, so the audit runs
unscoped over a whole database as it does after a load test, and corruptions stay local.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from loadtests.acks import Ack, AckJournal
from loadtests.audit import main as audit_main
from loadtests.audit import run_audit
from loadtests.audit_checks import Finding, Scope
from matchday.inventory.commands import Commit, Release, Reserve, Restock
from matchday.inventory.records import SkuRow
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.settings import Settings
from matchday.storage.db import make_pool, migrate
from matchday.storage.inventory_repo import InventoryRepository
from tests.conftest import uid
from tests.fakes import ManualClock

pytestmark = pytest.mark.integration

ROUTER = Router(1, 1)


def _db(url: str, name: str) -> str:
    return make_conninfo(url, dbname=name)


@pytest.fixture(scope="module")
def template(settings: Settings) -> Iterator[str]:
    name = uid("audit_tpl").replace("-", "_")
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    migrate(_db(settings.database_url, name))
    yield name
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db(settings: Settings, template: str) -> Iterator[str]:
    name = uid("audit").replace("-", "_")
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    yield _db(settings.database_url, name)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class Shop:
    url: str
    acks: list[Ack]
    paid: str  # SKU with a paid order (held and committed reservations)
    other: str  # SKU restocked, with a released and an expired reservation
    committed: str
    held: str
    released: str
    order: str


async def make_shop(url: str) -> Shop:
    """What a short surge leaves behind, written by the real shard core over PostgreSQL."""
    pool = make_pool(url, max_size=2)
    await pool.open()
    try:
        repo = InventoryRepository(pool)
        paid, other = uid("AUD"), uid("AUD")
        await repo.create_skus([SkuRow(paid, 10, 0, 0), SkuRow(other, 5, 0, 0)], ROUTER)
        clock = ManualClock(time.time())
        core = ShardCore(0, ROUTER, repo, clock=clock)
        await core.start()

        async def apply(m: Any) -> Any:
            (outcome,) = await core.apply([m])
            return outcome.unwrap()

        r1 = await apply(Reserve(uid("rq"), paid, 2, "c_a1", "cust-a", 600))
        r2 = await apply(Reserve(uid("rq"), paid, 1, "c_b2", "cust-b", 600))
        r3 = await apply(Reserve(uid("rq"), other, 1, "c_c3", "cust-c", 600))
        r4 = await apply(Reserve(uid("rq"), other, 2, "c_d4", "cust-d", 1))
        await apply(Restock(uid("rq"), other, 3))
        await apply(Release(uid("rq"), other, r3.reservation_id))
        clock.advance(2)
        for expire in core.due_expiries(clock.now()):
            await apply(expire)
        order = "o_" + uid("o").split("-")[1]
        await apply(Commit(uid("rq"), paid, r1.reservation_id, order))
    finally:
        await pool.close()
    with psycopg.connect(url, autocommit=True) as conn:
        for cart, customer in (("c_a1", "cust-a"), ("c_b2", "cust-b")):
            conn.execute(
                "INSERT INTO carts (cart_id, customer_id) VALUES (%s, %s)", (cart, customer)
            )
        conn.execute(
            "INSERT INTO orders (order_id, cart_id, customer_id, idempotency_key, status,"
            " total_cents, currency, payment_token, gateway, payment_ref, attempts)"
            " VALUES (%s, 'c_a1', 'cust-a', 'k1', 'paid', 2000, 'EUR', 'pm_card_visa', 'test',"
            " 'pi_1', 1)",
            (order,),
        )
        conn.execute(
            "INSERT INTO order_lines VALUES (%s, %s, %s, 2, 1000, 'Kit')",
            (order, r1.reservation_id, paid),
        )
    now = time.time()
    acks = [
        Ack("add", r1.reservation_id, paid, 2, "c_a1", "cust-a", now),
        Ack("add", r2.reservation_id, paid, 1, "c_b2", "cust-b", now),
        Ack("add", r4.reservation_id, other, 2, "c_d4", "cust-d", now),
        Ack("order", order, "", 2, "c_a1", "cust-a", now),
    ]
    return Shop(url, acks, paid, other, r1.reservation_id, r2.reservation_id,
                r3.reservation_id, order)  # fmt: skip


def failing(shop: Shop, acks: list[Ack] | None = None) -> set[str]:
    if acks is None:
        findings = run_audit(shop.url, [], grace_s=5.0)
    else:
        findings = _run_with_acks(shop.url, acks)
    return {f.check for f in findings if not f.ok}


def _run_with_acks(url: str, acks: list[Ack]) -> list[Finding]:
    with tempfile.TemporaryDirectory() as d:
        journal = AckJournal(Path(d))
        for a in acks:
            journal.append(a)
        journal.close()
        return run_audit(url, [Path(d)], grace_s=5.0)


def sql(shop: Shop, statement: str, *params: object) -> None:
    with psycopg.connect(shop.url, autocommit=True) as conn:
        conn.execute(statement, params)


async def test_a_consistent_shop_passes_every_check(db: str) -> None:
    shop = await make_shop(db)
    findings = _run_with_acks(db, shop.acks)
    assert [f.violations for f in findings] == [[]] * 6
    assert {f.check: f.checked for f in findings} == {
        "oversold": 2, "counters": 2, "journal": 2, "payments": 1, "expiry": 4, "acks": 4,
    }  # fmt: skip


async def test_units_sold_beyond_stock_are_caught_in_counters_and_in_the_recount(db: str) -> None:
    shop = await make_shop(db)
    sql(shop, "ALTER TABLE inventory DROP CONSTRAINT stock_never_negative")
    sql(shop, "UPDATE inventory SET sold = on_hand + 1 WHERE sku = %s", shop.paid)
    assert "oversold" in failing(shop)

    sql(shop, "UPDATE inventory SET sold = 2 WHERE sku = %s", shop.paid)
    assert failing(shop) == set()
    sql(shop, "UPDATE reservations SET qty = 50 WHERE reservation_id = %s", shop.committed)
    assert {"oversold", "counters", "journal"} <= failing(shop)


async def test_counters_that_disagree_with_reservations_are_caught(db: str) -> None:
    shop = await make_shop(db)
    sql(shop, "UPDATE inventory SET reserved = reserved + 1 WHERE sku = %s", shop.paid)
    assert failing(shop) == {"counters", "journal"}


async def test_a_journal_that_disagrees_is_caught_even_when_counters_agree(db: str) -> None:
    shop = await make_shop(db)
    # Each of make_shop's mutations is a batch of its own: drop the release's.
    sql(shop, "DELETE FROM inventory_batches WHERE kinds = ARRAY[1]::smallint[]")
    assert failing(shop) == {"journal"}


async def test_a_change_left_out_of_the_journal_is_caught_by_its_availability_chain(
    db: str,
) -> None:
    # Dropping the restock leaves every reservation's story intact and no on_hand journaled
    # for that SKU; only the availability recorded before and after each change tells.
    shop = await make_shop(db)
    sql(shop, "DELETE FROM inventory_batches WHERE kinds = ARRAY[5]::smallint[]")
    assert failing(shop) == {"journal"}
    findings = run_audit(shop.url, [], grace_s=5.0)
    [journal] = [f for f in findings if f.check == "journal"]
    assert any("jumps from" in v for v in journal.violations)


async def test_an_on_hand_nobody_journaled_is_caught(db: str) -> None:
    shop = await make_shop(db)
    sql(shop, "UPDATE inventory SET on_hand = on_hand + 5 WHERE sku = %s", shop.other)
    assert failing(shop) == {"journal"}


async def test_a_paid_order_without_a_payment_or_charged_twice_is_caught(db: str) -> None:
    shop = await make_shop(db)
    sql(shop, "UPDATE orders SET payment_ref = NULL WHERE order_id = %s", shop.order)
    assert failing(shop) == {"payments"}
    sql(shop, "UPDATE orders SET payment_ref = 'pi_1' WHERE order_id = %s", shop.order)
    sql(
        shop,
        "INSERT INTO orders (order_id, cart_id, customer_id, idempotency_key, status,"
        " total_cents, currency, payment_token, payment_ref) VALUES ('o_dup', 'c_b2', 'cust-b',"
        " 'k2', 'paid', 1000, 'EUR', 'pm_card_visa', 'pi_1')",
    )
    sql(
        shop,
        "INSERT INTO order_lines VALUES ('o_dup', %s, %s, 1, 1000, 'Kit')",
        shop.held,
        shop.paid,
    )
    assert failing(shop) == {"payments"}  # one charge settles two orders; a line not committed


async def test_stock_sold_to_an_order_that_was_not_paid_is_caught(db: str) -> None:
    shop = await make_shop(db)
    sql(shop, "UPDATE orders SET status = 'payment_failed' WHERE order_id = %s", shop.order)
    assert failing(shop) == {"payments"}


async def test_two_succeeded_payment_attempts_for_one_order_are_caught(db: str) -> None:
    shop = await make_shop(db)
    # Migration 005 (payments) creates the table; the audit only needs these columns.
    sql(shop, "CREATE TABLE IF NOT EXISTS payment_attempts"
              " (order_id text, attempt int, gateway text, status text)")  # fmt: skip
    insert = "INSERT INTO payment_attempts (order_id, attempt, gateway, status) VALUES "
    sql(shop, insert + "(%s, 1, 'test', 'declined'), (%s, 2, 'test', 'succeeded')",
        shop.order, shop.order)  # fmt: skip
    assert failing(shop) == set()
    sql(shop, insert + "(%s, 3, 'test', 'succeeded')", shop.order)
    assert failing(shop) == {"payments"}


async def test_a_hold_kept_past_its_expiry_is_caught(db: str) -> None:
    shop = await make_shop(db)
    sql(shop, "UPDATE reservations SET expires_at = now() - interval '1 hour'"
              " WHERE reservation_id = %s", shop.held)  # fmt: skip
    assert failing(shop) == {"expiry"}


async def test_a_commit_after_the_expiry_is_caught(db: str) -> None:
    shop = await make_shop(db)
    sql(shop, "UPDATE reservations SET closed_at = expires_at + interval '1 hour'"
              " WHERE reservation_id = %s", shop.committed)  # fmt: skip
    assert failing(shop) == {"expiry"}
    sql(shop, "UPDATE reservations SET closed_at = created_at WHERE reservation_id = %s",
        shop.committed)  # fmt: skip
    sql(shop, "UPDATE inventory_batches SET at = at + interval '1 hour' WHERE 2 = ANY(kinds)")
    assert failing(shop) == {"expiry"}


async def test_an_acknowledged_add_or_order_missing_from_postgres_is_caught(db: str) -> None:
    shop = await make_shop(db)
    lost = Ack("add", "r-never-written", shop.paid, 1, "c_x", "cust-x", time.time())
    assert failing(shop, [*shop.acks, lost]) == {"acks"}
    elsewhere = replace(shop.acks[0], cart_id="c_other")
    assert failing(shop, [elsewhere]) == {"acks"}
    unpaid = Ack("order", "o_unknown", "", 1, "c_x", "cust-x", time.time())
    assert failing(shop, [unpaid]) == {"acks"}
    assert failing(shop, shop.acks) == set()


async def test_the_command_exits_non_zero_on_a_violation_and_zero_when_clean(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = await make_shop(db)
    assert audit_main(["--database-url", db, "--no-acks"]) == 0
    assert "PASSED" in capsys.readouterr().out
    sql(shop, "UPDATE inventory SET reserved = reserved + 1 WHERE sku = %s", shop.paid)
    assert audit_main(["--database-url", db, "--no-acks"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and shop.paid in out
    # Scoped to the other SKU, the corrupted one is out of sight.
    assert run_audit(db, [], Scope(shop.other), 5.0)[1].ok
