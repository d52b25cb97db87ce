"""010_compact_journal.sql on a database the engine filled before it: nothing is lost.

The database is migrated to 009 and filled by the shard core over ``LegacyRepository`` (the
pre-010 storage: JSONB journal and outbox rows, customer totals for every SKU), with every
kind of mutation, a count that revokes holds, an expiry, and outbox rows not yet relayed.
After 010, a shard recovers the same state, every request retried by its id gets the
answer it got first (from the cache-less journal look-up and from the unique-key path), the
turnover report reads the same history, the audit passes, and the relay sends the old
outbox rows first, as they were, then the new ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis

from loadtests.audit import run_audit
from loadtests.audit_checks import Scope
from matchday.events.relay import OutboxRelay
from matchday.inventory.changes import R_CART, R_CUSTOMER, R_EXPIRES, R_QTY
from matchday.inventory.commands import (
    AdjustLimits,
    Commit,
    Extend,
    Mutation,
    Outcome,
    Release,
    Reserve,
    Resize,
    Restock,
    SetOnHand,
)
from matchday.inventory.records import SkuRow
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.settings import Settings
from matchday.storage.db import make_pool, migrate
from matchday.storage.inventory_repo import InventoryRepository
from matchday.storage.reports_repo import ReportsRepository
from tests.conftest import uid
from tests.fakes import ManualClock
from tests.integration.legacy_engine import LegacyRepository, database_before

pytestmark = pytest.mark.integration

ROUTER = Router(1)


@pytest.fixture
def db_at_009(settings: Settings) -> Iterator[str]:
    with database_before(settings.database_url, "010") as url:
        yield url


@dataclass
class History:
    prefix: str
    plain: str
    limited: str
    counted: str
    answers: list[tuple[Mutation, Outcome]]
    state: dict[str, Any]
    expiries: dict[str, float]


def ledger_state(core: ShardCore) -> dict[str, Any]:
    """Counters, limits, holds and customer totals; expiries apart (see ``expiries``)."""
    return {
        sku: (
            (g.on_hand, g.reserved, g.sold),
            (g.per_customer_limit, g.low_stock_threshold, g.low_stock_order_cap),
            {r: (h[R_QTY], h[R_CART], h[R_CUSTOMER]) for r, h in g.held.items()},
            g.customer_units,
        )
        for sku, g in core.ledgers.items()
    }


def expiries(core: ShardCore) -> dict[str, Any]:
    """Stored as timestamptz, to the microsecond: compared as such."""
    return {
        r: pytest.approx(h[R_EXPIRES], abs=2e-6)
        for g in core.ledgers.values()
        for r, h in g.held.items()
    }


async def fill(
    url: str, make_repo: Callable[[Any], InventoryRepository] = LegacyRepository
) -> History:
    """Every kind of change, written the pre-010 way (or ``make_repo``'s), with each
    request's first answer."""
    prefix = uid("MIG").upper()
    plain, limited, counted = f"{prefix}-PLAIN", f"{prefix}-LIMITED", f"{prefix}-COUNTED"
    pool = make_pool(url, max_size=2)
    await pool.open()
    try:
        repo = make_repo(pool)
        await repo.create_skus(
            [SkuRow(plain, 100, 0, 0), SkuRow(limited, 50, 0, 0, 3, 10), SkuRow(counted, 20, 0, 0)],
            ROUTER,
        )
        clock = ManualClock(time.time())
        core = ShardCore(0, ROUTER, repo, clock=clock)
        await core.start()
        answers: list[tuple[Mutation, Outcome]] = []

        async def batch(*ms: Mutation) -> list[Any]:
            outs = await core.apply(list(ms))
            answers.extend(zip(ms, outs, strict=True))
            return [o.unwrap() for o in outs]

        def res(cart: str, sku: str, qty: int, ttl: float = 600) -> Reserve:
            return Reserve(uid("rq"), sku, qty, f"c_{cart}", f"u_{cart}", ttl)

        r1, r2, r3, r4, _ = await batch(
            res("a", plain, 2), res("b", plain, 1), res("c", limited, 2), res("d", counted, 5),
            res("e", counted, 4),
        )  # fmt: skip
        clock.advance(5)
        await batch(
            Resize(uid("rq"), plain, r1.reservation_id, 3),
            Extend(uid("rq"), plain, r2.reservation_id, 900),
            Commit(uid("rq"), limited, r3.reservation_id, "o_1"),
            Restock(uid("rq"), plain, 10),
        )
        clock.advance(5)
        await batch(SetOnHand(uid("rq"), counted, 6))  # revokes the newest hold (r5)
        await batch(
            AdjustLimits(uid("rq"), plain, None, 5, 2),
            AdjustLimits(uid("rq"), limited, 3, 10, None),
            Release(uid("rq"), counted, r4.reservation_id),
            res("f", limited, 1),
        )
        (short,) = await batch(res("g", plain, 1, ttl=1))
        clock.advance(2)
        await core.apply(list(core.due_expiries(clock.now())))
        assert core.ledgers[plain].next_deadline(short.reservation_id) is None
        held = {r: h[R_EXPIRES] for g in core.ledgers.values() for r, h in g.held.items()}
        return History(prefix, plain, limited, counted, answers, ledger_state(core), held)
    finally:
        await pool.close()


async def stock_history(pool: Any, prefix: str) -> list[tuple[Any, ...]]:
    """What turnover reads of the journal (009's view), in its own order."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT sku, at, kind, level, restocked, sold FROM inventory_stock_changes"
            " WHERE sku LIKE %s ORDER BY sku, at, seq",
            (f"{prefix}%",),
        )
        return list(await cur.fetchall())


async def turnover(pool: Any, prefix: str) -> dict[str, Any]:
    # Only turnover's view: the database is read at 009 too, before later reports' views.
    async with pool.connection() as conn:
        await conn.execute("REFRESH MATERIALIZED VIEW report_inventory_turnover")
    reports = ReportsRepository(pool)
    return {t.sku: t for t in await reports.turnover(1_000_000) if t.sku.startswith(prefix)}


async def test_010_converts_a_database_filled_by_the_engine_before_it(
    db_at_009: str, settings: Settings
) -> None:
    h = await fill(db_at_009)
    pool = make_pool(db_at_009, max_size=4)
    await pool.open()
    try:
        before = await turnover(pool, h.prefix)
        history = await stock_history(pool, h.prefix)
        assert len(history) == 5  # a commit, a restock, a count, two limit changes
        async with pool.connection() as conn:
            legacy = await (await conn.execute("SELECT count(*) FROM inventory_outbox")).fetchone()
        assert legacy is not None and legacy[0] == 11  # one row per touched SKU per batch

        applied = migrate(db_at_009)  # 010, then the later ones (011 payment deadlines, ...)
        assert applied[0] == "010_compact_journal.sql" and len(applied) == len(set(applied))

        # Recovery: the same counters, holds, limits; customer totals only where limited.
        repo = InventoryRepository(pool)
        core = ShardCore(0, ROUTER, repo)
        await core.start()
        expected = {
            sku: (*state[:3], state[3] if sku == h.limited else None)
            for sku, state in h.state.items()
        }
        assert ledger_state(core) == expected
        assert h.expiries == expiries(core)
        async with pool.connection() as conn:
            units = await (
                await conn.execute(
                    "SELECT sku, customer_id, units FROM customer_units WHERE sku LIKE %s"
                    " ORDER BY 1, 2",
                    (f"{h.prefix}%",),
                )
            ).fetchall()
        assert units == [(h.limited, "u_c", 2), (h.limited, "u_f", 1)]

        # Every request retried by its id gets its first answer, from the converted journal.
        retried = await core.apply([m for m, _ in h.answers])
        assert retried == [o for _, o in h.answers]
        assert ledger_state(core) == expected
        # Also past the look-up window, through the unique request key.
        late = ShardCore(0, ROUTER, repo)
        await late.start()
        late._lookup_until = 0.0
        m, first = h.answers[0]
        assert await late.apply([m]) == [first]
        assert late.recoveries == 1

        # The reports read the same stock history (averages over 30 days move with the clock).
        assert await stock_history(pool, h.prefix) == history
        after = await turnover(pool, h.prefix)
        assert set(after) == set(before) == {h.plain, h.limited, h.counted}
        for sku, row in after.items():
            was = before[sku]
            assert (row.units_sold_30d, row.units_on_hand) == (
                was.units_sold_30d,
                was.units_on_hand,
            )
            assert row.average_on_hand == pytest.approx(was.average_on_hand, abs=1e-3)

        # The audit replays the converted journal and finds it whole (no orders here: the
        # commit names one the shop never wrote, so the payments check is not asked).
        findings = run_audit(db_at_009, [], Scope(f"{h.prefix}%"), grace_s=5.0)
        engine = {"oversold", "counters", "journal", "expiry"}
        assert {f.check: f.violations for f in findings if f.check in engine} == {
            check: [] for check in engine
        }

        # New batches follow the converted ones; the relay sends the old rows first.
        (new,) = await late.apply([Reserve(uid("rq"), h.plain, 1, "c_h", "u_h", 600)])
        assert new.error is None
        await _relay_everything(pool, settings, h)
    finally:
        await pool.close()


async def _relay_everything(pool: Any, settings: Settings, h: History) -> None:
    client = aioredis.Redis.from_url(settings.redis_url)
    stream, avail = uid("stream"), uid("avail")
    try:
        relay = OutboxRelay(pool, client, stream=stream, availability_key=avail, batch=4)
        while await relay.run_once():
            pass
        entries = [e for _, e in await client.xrange(stream)]
        ids = [int(e[b"outbox_id"]) for e in entries]
        assert ids == sorted(ids) and len(ids) == 11 + 1
        first = json.loads(entries[0][b"events"])
        assert [e["type"] for e in first] == ["reserved", "reserved"]  # as stored before 010
        last = entries[-1]
        assert last[b"sku"].decode() == h.plain
        [event] = json.loads(last[b"events"])
        assert (event["type"], event["cart_id"], event["qty"]) == ("reserved", "c_h", 1)
        assert int(await client.hget(avail, h.plain)) == int(last[b"available"])
    finally:
        await client.aclose()
