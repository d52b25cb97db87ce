"""A reserve's dedupe key is its hold's primary key (018, ADR 0034), on PostgreSQL.

A reserve writes no key row; every other journaled request does. A retry applied as new
meets one unique index or the other, and a request id reused for another kind meets the
batch's probe of the other index: either way it gets the answer it got first, after a
restart, looked up or not.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from loadtests.audit import run_audit
from loadtests.audit_checks import Scope
from matchday.inventory.commands import Outcome, Release, Reserve, Restock
from matchday.inventory.ids import request_key, reservation_id, tagged
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.inventory.wire import outcome_to_wire
from matchday.settings import Settings
from matchday.storage.db import make_pool, migrate
from matchday.storage.inventory_repo import InventoryRepository
from tests.conftest import uid
from tests.integration.legacy_017 import Repository017
from tests.integration.legacy_engine import database_before
from tests.integration.test_journal_migration import fill, ledger_state
from tests.integration.test_shard_on_postgres import make_sku, reserve

pytestmark = pytest.mark.integration

ROUTER = Router(1, 1)


async def fetch(repo: InventoryRepository, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async with repo.pool.connection() as conn:
        return list(await (await conn.execute(sql, args)).fetchall())


async def one_hold(repo: InventoryRepository) -> tuple[str, ShardCore, Reserve, Outcome]:
    """A SKU of 5, a shard that owns it, and a reserve of one unit it answered."""
    sku = await make_sku(repo, 5)
    core = ShardCore(0, ROUTER, repo)
    await core.start()
    m = reserve(sku)
    (answer,) = await core.apply([m])
    assert answer.error is None
    return sku, core, m, answer


async def restarted(repo: InventoryRepository) -> ShardCore:
    """A new incarnation past its look-up window: a retry that changes nothing now is not
    looked up first, so every retry is found by a unique index or the batch's probe."""
    core = ShardCore(0, ROUTER, repo)
    await core.start()
    core._lookup_until = 0.0
    return core


async def test_the_database_computes_the_key_the_shard_does(repo: InventoryRepository) -> None:
    ids = ["rq-1", "", "ünïcödé-✓", "x" * 200, "20261204-201512-ab12-e0-256-9-63"]
    rows = await fetch(repo, "SELECT inventory_request_key(x) FROM unnest(%s::text[]) x", ids)
    assert [r[0] for r in rows] == [request_key(i) for i in ids]


async def test_a_reserve_writes_no_key_row_and_its_hold_names_its_batch(
    repo: InventoryRepository,
) -> None:
    sku, core, m, held = await one_hold(repo)
    hold = held.unwrap().reservation_id
    assert hold == reservation_id(m.request_id)
    release = Release(uid("rq"), sku, hold)
    (released,) = await core.apply([release])
    assert released.error is None

    journal = dict(
        await fetch(
            repo,
            "SELECT request_id, batch FROM inventory_journal WHERE sku = %s",
            sku,
        )
    )
    keys = "SELECT batch FROM inventory_requests WHERE key = inventory_request_key(%s)"
    assert await fetch(repo, keys, m.request_id) == []
    assert await fetch(repo, keys, release.request_id) == [(journal[release.request_id],)]
    assert await fetch(repo, "SELECT batch FROM reservations WHERE reservation_id = %s", hold) == [
        (journal[m.request_id],)
    ]


async def test_a_retried_reserve_whose_hold_was_released_gets_its_first_answer(
    repo: InventoryRepository,
) -> None:
    sku, core, m, first = await one_hold(repo)
    await core.apply([Release(uid("rq"), sku, first.unwrap().reservation_id)])

    late = await restarted(repo)
    again, other = await late.apply([m, reserve(sku)])
    assert again == first  # the hold as it was then, not released, not reserved again
    assert other.error is None
    assert (await repo.stock_rows([sku]))[sku].reserved == 1


async def test_a_request_id_reused_for_another_kind_gets_its_first_answer(
    repo: InventoryRepository,
) -> None:
    """Each direction: a reserve's id reused for a release (its key would be new, its hold
    exists), and a restock's id reused for a reserve (its hold would be new, its key exists).
    Neither is applied."""
    sku, core, m, reserved = await one_hold(repo)
    restock = Restock(uid("rq"), sku, 3)
    (restocked,) = await core.apply([restock])

    late = await restarted(repo)
    hold = reserved.unwrap().reservation_id
    # One batch each: either probe alone refuses its batch.
    (as_release,) = await late.apply([Release(m.request_id, sku, hold)])
    (as_reserve,) = await late.apply(
        [Reserve(restock.request_id, sku, 2, uid("cart"), uid("cust"), 60.0)]
    )
    (fresh,) = await late.apply([reserve(sku)])
    assert as_release == reserved
    assert as_reserve == restocked
    assert fresh.error is None
    row = (await repo.stock_rows([sku]))[sku]
    assert (row.on_hand, row.reserved) == (8, 2)  # the first hold still held, and the fresh one
    assert late.ledgers[sku].held.keys() == {hold, fresh.unwrap().reservation_id}


async def test_a_tagged_reserve_is_found_by_its_hold_after_a_restart_and_in_any_kind(
    repo: InventoryRepository,
) -> None:
    """ADR 0039: a request id led by a time tag derives a hold led by the same tag, and that
    hold is its dedupe key as an untagged reserve's is: a retry after a restart, the
    journal's look-up and a reuse for another kind all find it."""
    sku = await make_sku(repo, 5)
    core = ShardCore(0, ROUTER, repo)
    await core.start()
    m = Reserve(tagged(uid("add"), time.time()), sku, 1, uid("cart"), uid("cust"), 60.0)
    (first,) = await core.apply([m])
    hold = first.unwrap().reservation_id
    assert hold == reservation_id(m.request_id)
    assert hold.startswith("t" + m.request_id[:11] + ".")
    stored = "SELECT reservation_id, batch IS NOT NULL FROM reservations WHERE sku = %s"
    assert await fetch(repo, stored, sku) == [(hold, True)]
    assert (await repo.lookup_results([m.request_id]))[m.request_id] == outcome_to_wire(first)
    await core.apply([Release(uid("rq"), sku, hold)])

    late = await restarted(repo)
    again, other = await late.apply([m, reserve(sku)])
    (as_release,) = await late.apply([Release(m.request_id, sku, hold)])
    assert again == as_release == first  # not reserved again, not released again
    assert other.error is None
    assert (await repo.stock_rows([sku]))[sku].reserved == 1
    untagged = Reserve(m.request_id[12:], sku, 1, m.cart_id, m.customer_id, 60.0)
    (another,) = await late.apply([untagged])  # the tag is part of the id: another request
    assert another.unwrap().reservation_id == reservation_id(untagged.request_id) != hold


@pytest.fixture
def db_at_017(settings: Settings) -> Iterator[str]:
    with database_before(settings.database_url, "018") as url:
        yield url


async def test_018_rekeys_a_database_filled_by_the_engine_before_it(db_at_017: str) -> None:
    h = await fill(db_at_017, Repository017)
    assert migrate(db_at_017)[0] == "018_reserve_keyed_by_its_hold.sql"  # then the later ones
    pool = make_pool(db_at_017, max_size=4)
    await pool.open()
    try:
        repo = InventoryRepository(pool)
        # Every journaled request's key is there, recomputed, naming its batch; no hold
        # written before 018 names one.
        missing = await fetch(
            repo,
            "SELECT j.request_id FROM inventory_journal j WHERE j.sku LIKE %s"
            " AND j.kind NOT IN ('expire', 'revoke') AND NOT EXISTS (SELECT 1"
            " FROM inventory_requests q WHERE q.key = inventory_request_key(j.request_id)"
            " AND q.batch = j.batch)",
            f"{h.prefix}%",
        )
        assert missing == []
        assert await fetch(
            repo, "SELECT count(*) FROM reservations WHERE sku LIKE %s AND batch IS NOT NULL",
            f"{h.prefix}%",
        ) == [(0,)]  # fmt: skip

        core = ShardCore(0, ROUTER, repo)
        await core.start()
        assert ledger_state(core) == h.state
        retried = await core.apply([m for m, _ in h.answers])  # looked up
        assert retried == [o for _, o in h.answers]
        late = await restarted(repo)  # refused by the keys, then looked up
        assert await late.apply([m for m, _ in h.answers]) == [o for _, o in h.answers]
        assert ledger_state(late) == h.state

        # A reserve's id from before 018, reused for a release, meets its key row.
        m, first = next((m, o) for m, o in h.answers if isinstance(m, Reserve))
        hold = first.unwrap().reservation_id
        assert await late.apply([Release(m.request_id, m.sku, hold)]) == [first]

        # New reserves follow, keyed by their holds.
        (new,) = await late.apply([Reserve(uid("rq"), h.plain, 1, "c_h", "u_h", 600)])
        assert new.error is None
        assert ledger_state(late) != h.state

        findings = run_audit(db_at_017, [], Scope(f"{h.prefix}%"), grace_s=5.0)
        engine = {"oversold", "counters", "journal", "expiry"}
        assert {f.check: f.violations for f in findings if f.check in engine} == {
            check: [] for check in engine
        }
    finally:
        await pool.close()
