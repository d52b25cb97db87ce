"""ShardCore against real PostgreSQL: group commit, fencing, recovery, expiry, outages."""

from __future__ import annotations

import asyncio
import dataclasses

import psycopg
import pytest

from matchday.domain.errors import InvalidInput, OutOfStock, StaleEpoch, Unavailable, WrongShard
from matchday.inventory.changes import R_SKU
from matchday.inventory.commands import Commit, Release, Reserve, Resize, Restock
from matchday.inventory.records import BatchWrite, SkuRow
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.settings import Settings
from matchday.storage.db import make_pool, migrate
from matchday.storage.inventory_repo import InventoryRepository
from tests.background import stop
from tests.conftest import uid

pytestmark = pytest.mark.integration

ROUTER = Router(1, 1)  # shard 0 on the ring, shard 1 dedicated


async def make_sku(repo: InventoryRepository, on_hand: int, **limits: int) -> str:
    sku = uid("SKU")
    await repo.create_skus([SkuRow(sku, on_hand, 0, 0, **limits)], ROUTER)
    return sku


def reserve(sku: str, qty: int = 1, ttl: float = 60.0, customer: str | None = None) -> Reserve:
    return Reserve(uid("rq"), sku, qty, uid("cart"), customer or uid("cust"), ttl)


def test_migrations_are_applied_once(settings: Settings) -> None:
    assert migrate(settings.database_url) == []


async def test_a_batch_is_one_transaction_with_journal_reservations_and_outbox(
    repo: InventoryRepository,
) -> None:
    sku = await make_sku(repo, 5)
    core = ShardCore(0, ROUTER, repo)
    await core.start()
    outs = await core.apply([reserve(sku) for _ in range(7)])
    assert [o.error is None for o in outs] == [True] * 5 + [False] * 2
    assert all(isinstance(o.error, OutOfStock) for o in outs[5:])
    row = (await repo.stock_rows([sku]))[sku]
    assert (row.on_hand, row.reserved, row.sold) == (5, 5, 0)
    async with repo.pool.connection() as conn:
        journal = await (
            await conn.execute("SELECT count(*) FROM inventory_journal WHERE sku = %s", (sku,))
        ).fetchone()
        held = await (
            await conn.execute(
                "SELECT count(*) FROM reservations WHERE sku = %s AND status = 'held'", (sku,)
            )
        ).fetchone()
        outbox = await (
            await conn.execute(
                "SELECT count(*), max(reserved[1]) FROM inventory_outbox WHERE skus = ARRAY[%s]",
                (sku,),
            )
        ).fetchone()
        batches = await (
            await conn.execute(
                "SELECT count(DISTINCT batch) FROM inventory_journal WHERE sku = %s", (sku,)
            )
        ).fetchone()
    assert journal == (5,)  # refusals change nothing and are not journaled
    assert batches == (1,)  # the journal is written once per batch
    assert held == (5,)
    assert outbox == (1, 5)  # one outbox row per batch


async def test_a_retried_request_gets_its_first_answer_after_a_restart(
    repo: InventoryRepository,
) -> None:
    sku = await make_sku(repo, 3)
    first = ShardCore(0, ROUTER, repo)
    await first.start()
    m = reserve(sku)
    answer = (await first.apply([m]))[0].unwrap()
    restarted = ShardCore(0, ROUTER, repo)
    await restarted.start()
    again = (await restarted.apply([m]))[0].unwrap()
    assert again == answer
    assert (await repo.stock_rows([sku]))[sku].reserved == 1


async def test_a_zombie_shard_with_a_stale_epoch_cannot_write(repo: InventoryRepository) -> None:
    sku = await make_sku(repo, 10)
    zombie = ShardCore(0, ROUTER, repo)
    await zombie.start()
    await zombie.apply([reserve(sku)])
    successor = ShardCore(0, ROUTER, repo)
    await successor.start()
    assert successor.epoch > zombie.epoch
    outs = await zombie.apply([reserve(sku), Restock(uid("rq"), sku, 100)])
    assert all(isinstance(o.error, StaleEpoch) for o in outs)
    assert zombie.fenced
    row = (await repo.stock_rows([sku]))[sku]
    assert (row.on_hand, row.reserved) == (10, 1)
    # The live shard carries on from what was durable.
    assert (await successor.apply([reserve(sku)]))[0].error is None
    assert (await repo.stock_rows([sku]))[sku].reserved == 2


async def test_a_sku_claimed_by_another_shard_fences_the_old_owner(
    repo: InventoryRepository,
) -> None:
    sku = await make_sku(repo, 10)
    old = ShardCore(0, ROUTER, repo)
    await old.start()
    await old.apply([reserve(sku)])
    await repo.set_pin(sku, 1)
    new = ShardCore(1, ROUTER, repo)
    await new.start()
    assert await new.adopt([sku]) == [sku]
    # Its write is refused (the row is no longer its own); it reloads that SKU alone, finds it
    # pinned elsewhere, and redirects in the same call.
    outs = await old.apply([reserve(sku)])
    assert isinstance(outs[0].error, WrongShard) and outs[0].error.owner == 1
    assert old.recoveries == 1
    assert (await new.apply([reserve(sku)]))[0].error is None
    assert (await repo.stock_rows([sku]))[sku].reserved == 2


async def test_a_claim_routed_by_a_pin_that_changed_since_claims_and_loads_nothing(
    repo: InventoryRepository,
) -> None:
    # A shard read "no pin" (peek_skus), then the SKU was pinned to shard 1: the claim that
    # follows must not take the SKU from the pin's owner (tests/unit/test_shard_core.py has
    # the race end to end).
    sku = await make_sku(repo, 10)
    ring_epoch = await repo.claim_epoch(0)
    pinned_epoch = await repo.claim_epoch(1)
    assert await repo.peek_skus([sku]) == {sku: None}
    await repo.set_pin(sku, 1)

    stale = await repo.claim_skus(0, ring_epoch, {sku: None})
    assert stale.skus == [] and stale.reservations == []
    current = await repo.claim_skus(1, pinned_epoch, {sku: 1})
    assert [row.sku for row in current.skus] == [sku]
    async with repo.pool.connection() as conn:
        cur = await conn.execute("SELECT shard_id FROM inventory WHERE sku = %s", (sku,))
        assert await cur.fetchone() == (1,)


async def test_a_dedicated_shard_loads_only_the_skus_pinned_to_it(
    repo: InventoryRepository,
) -> None:
    pinned, unpinned = await make_sku(repo, 10), await make_sku(repo, 10)
    epoch = await repo.claim_epoch(1)
    await repo.set_pin(pinned, 1)
    await repo.set_pin(unpinned, 1)
    assert {r.sku for r in (await repo.claim_skus(1, epoch, {pinned: 1, unpinned: 1})).skus} == {
        pinned,
        unpinned,
    }
    await repo.set_pin(unpinned, None)  # its row still names shard 1 until the ring claims it

    loaded = {r.sku for r in (await repo.load_shard(1, epoch, pinned_only=True)).skus}
    assert pinned in loaded and unpinned not in loaded
    assert unpinned in {r.sku for r in (await repo.load_shard(1, epoch)).skus}  # as before
    again = await repo.reload_skus(1, [pinned, unpinned], pinned_only=True)
    assert [r.sku for r in again.skus] == [pinned]


async def test_reservations_that_expired_while_the_shard_was_down_are_released_at_once(
    repo: InventoryRepository,
) -> None:
    sku = await make_sku(repo, 4)
    crashed = ShardCore(0, ROUTER, repo)
    await crashed.start()
    outs = await crashed.apply([reserve(sku, qty=2, ttl=1.0), reserve(sku, qty=1, ttl=600)])
    assert all(o.error is None for o in outs)
    del crashed  # no shutdown: as if the process died
    await asyncio.sleep(1.2)
    core = ShardCore(0, ROUTER, repo)
    await core.start()
    due = core.due_expiries(core.clock.now())
    # Shard 0 also recovers other tests' SKUs on the session's database: look at ours.
    mine = [e.reservation_id for e in due if e.sku == sku]
    assert mine == [outs[0].unwrap().reservation_id]  # type: ignore[union-attr]
    await core.apply(list(due))
    row = (await repo.stock_rows([sku]))[sku]
    assert (row.reserved, row.on_hand - row.reserved - row.sold) == (1, 3)


async def test_expiry_timers_release_stock_without_a_sweep(repo: InventoryRepository) -> None:
    sku = await make_sku(repo, 2)
    core = ShardCore(0, ROUTER, repo)
    await core.start()
    timers = asyncio.create_task(core.run_timers(core.apply_wire))
    try:
        outs = await core.apply([reserve(sku, ttl=1.0), reserve(sku, ttl=1.0)])
        rid = outs[0].unwrap().reservation_id  # type: ignore[union-attr]
        assert (await repo.stock_rows([sku]))[sku].reserved == 2
        for _ in range(40):
            await asyncio.sleep(0.1)
            if (await repo.stock_rows([sku]))[sku].reserved == 0:
                break
        assert (await repo.stock_rows([sku]))[sku].reserved == 0
        async with repo.pool.connection() as conn:
            status = await (
                await conn.execute(
                    "SELECT status FROM reservations WHERE reservation_id = %s", (rid,)
                )
            ).fetchone()
        assert status == ("expired",)
        late = await core.apply([Commit(uid("rq"), sku, rid, "order-1")])
        assert late[0].error is not None  # an expired hold can never be sold
    finally:
        await stop(timers)


async def test_a_postgres_outage_answers_unavailable_and_the_shard_recovers_by_itself(
    own_postgres: object,
) -> None:
    pg = own_postgres
    # As the shard actor makes it: no check on borrow, dead connections fail a batch.
    pool = make_pool(pg.url, max_size=2, check=False)  # type: ignore[attr-defined]
    await pool.open()
    repo = InventoryRepository(pool)
    try:
        sku = await make_sku(repo, 10)
        core = ShardCore(0, ROUTER, repo)
        await core.start()
        acked = (await core.apply([reserve(sku)]))[0].unwrap()
        await asyncio.to_thread(pg.stop, "immediate")  # type: ignore[attr-defined]
        down = await core.apply([reserve(sku), Release(uid("rq"), sku, acked.reservation_id)])  # type: ignore[union-attr]
        assert all(isinstance(o.error, Unavailable) for o in down)
        await asyncio.to_thread(pg.start)  # type: ignore[attr-defined]
        for _ in range(50):
            outs = await core.apply([reserve(sku)])
            if outs[0].error is None:
                break
            await asyncio.sleep(0.2)
        assert outs[0].error is None
        row = (await repo.stock_rows([sku]))[sku]
        assert row.reserved == 2  # the acked hold survived; nothing from the outage did
    finally:
        await pool.close()


async def test_counters_can_never_go_negative_in_the_database(repo: InventoryRepository) -> None:
    sku = await make_sku(repo, 1)
    async with repo.pool.connection() as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            await conn.execute("UPDATE inventory SET sold = 2 WHERE sku = %s", (sku,))


async def test_a_retry_arriving_after_the_lookup_window_still_gets_its_first_answer(
    repo: InventoryRepository,
) -> None:
    sku = await make_sku(repo, 5)
    first = ShardCore(0, ROUTER, repo)
    await first.start()
    m = reserve(sku)
    answer = (await first.apply([m]))[0].unwrap()
    late = ShardCore(0, ROUTER, repo, dedupe_window_s=10)
    await late.start()
    late._lookup_until = 0.0  # as if the window had passed: misses are not looked up
    again, other = await late.apply([m, reserve(sku)])
    # The journal's unique request key refuses the batch instead of reserving twice; the
    # shard reloads the batch's SKUs, looks the ids up and applies the rest once.
    assert again.unwrap() == answer
    assert other.error is None
    assert (await repo.stock_rows([sku]))[sku].reserved == 2
    assert late.recoveries == 1


async def test_a_resized_line_is_durable_and_a_restarted_shard_holds_the_new_quantity(
    repo: InventoryRepository,
) -> None:
    sku = await make_sku(repo, 6, per_customer_limit=4)
    core = ShardCore(0, ROUTER, repo)
    await core.start()
    m = reserve(sku, 1, customer="fan-1")
    rid = (await core.apply([m]))[0].unwrap().reservation_id  # type: ignore[union-attr]
    grown = (await core.apply([Resize(uid("rq"), sku, rid, 4)]))[0].unwrap()
    assert grown.qty == 4  # type: ignore[union-attr]
    async with repo.pool.connection() as conn:
        row = await (
            await conn.execute("SELECT qty FROM reservations WHERE reservation_id = %s", (rid,))
        ).fetchone()
    assert row == (4,)
    restarted = ShardCore(0, ROUTER, repo)
    await restarted.start()
    # The limit of 4 is reached after the restart too: the customer total was persisted.
    over = (await restarted.apply([reserve(sku, 1, customer="fan-1")]))[0]
    assert over.error is not None and over.error.code == "limit_exceeded"
    shrunk = (await restarted.apply([Resize(uid("rq"), sku, rid, 2)]))[0].unwrap()
    assert shrunk.qty == 2  # type: ignore[union-attr]
    stock = (await repo.stock_rows([sku]))[sku]
    assert (stock.on_hand, stock.reserved, stock.sold) == (6, 2, 0)


async def test_a_wide_batch_written_while_postgres_waits_on_a_lock_completes(
    repo: InventoryRepository, settings: Settings
) -> None:
    """A supplier sync or a flash sale over many SKUs: one batch of 3,000 reserves on 3,000
    SKUs, far more than a socket buffer holds, sent while the server is not reading (its
    first statement waits on a lock). psycopg's pipeline mode left the tail of such a batch
    unsent and both sides waited on each other for good (issue 12: bench.inventory's
    recovery phase stalled); the batch must complete once the lock is gone."""
    width = 3_000
    skus = [uid("WIDE") for _ in range(width)]
    await repo.create_skus([SkuRow(s, 5, 0, 0) for s in skus], ROUTER)
    core = ShardCore(0, ROUTER, repo)
    await core.start()
    assert sorted(await core.adopt(skus)) == sorted(skus)
    batch = [
        Reserve(uid("rq"), s, 1, f"cart-{s}-{'c' * 40}", f"fan-{s}-{'f' * 40}", 600.0) for s in skus
    ]
    async with await psycopg.AsyncConnection.connect(settings.database_url) as blocker:
        await blocker.execute("SELECT epoch FROM shard_epochs WHERE shard_id = 0 FOR UPDATE")
        applying = asyncio.create_task(core.apply(batch))
        await asyncio.sleep(1.0)  # the batch is on its way and the server is blocked
        assert not applying.done()
        await blocker.rollback()
    # A hang detector, not a timing target: the batch takes well under a second here.
    outs = await asyncio.wait_for(applying, 120)
    assert [o.error for o in outs] == [None] * width
    rows = await repo.stock_rows(skus)
    assert {s: rows[s].reserved for s in skus} == dict.fromkeys(skus, 1)


async def test_a_request_whose_journal_key_another_id_took_is_refused_alone(
    repo: InventoryRepository,
) -> None:
    """Two request ids with one 64-bit key: the later one can never be journaled. Planted
    here by keying it to a batch that answered something else."""
    sku = await make_sku(repo, 5)
    core = ShardCore(0, ROUTER, repo, dedupe_window_s=10)
    await core.start()
    (first,) = await core.apply([reserve(sku)])
    assert first.error is None
    victim = reserve(sku)
    async with repo.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO inventory_requests (key, batch) SELECT inventory_request_key(%s), batch"
            " FROM inventory_journal WHERE sku = %s",
            (victim.request_id, sku),
        )
    for window in (True, False):  # looked up first, or refused by the unique key
        core._lookup_until = float("inf") if window else 0.0
        refused, other = await core.apply([victim, reserve(sku)])
        assert isinstance(refused.error, InvalidInput), refused
        assert refused.error.field == "request_id"
        assert other.error is None
        core._young.clear()
    assert (await repo.stock_rows([sku]))[sku].reserved == 3


async def test_a_batch_whose_new_hold_names_a_sku_it_did_not_count_writes_nothing(
    repo: InventoryRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No foreign key checks a hold's SKU (017): the batch does. A hold forged onto a SKU
    the batch did not count, or onto no SKU at all, rolls the whole batch back."""
    sku, other = await make_sku(repo, 5), await make_sku(repo, 5)
    core = ShardCore(0, ROUTER, repo)
    await core.start()
    kept: list[BatchWrite] = []

    async def keep(batch: BatchWrite) -> None:
        kept.append(batch)
        raise Unavailable("kept by the test, not written")

    with monkeypatch.context() as m:
        m.setattr(repo, "write_batch", keep)
        (out,) = await core.apply([reserve(sku)])
    assert isinstance(out.error, Unavailable)
    (batch,) = kept
    for bad in (other, uid("NO-SUCH-SKU")):
        created = [(*r[:R_SKU], bad, *r[R_SKU + 1 :]) for r in batch.created]
        with pytest.raises(Unavailable, match="unknown_sku"):
            await repo.write_batch(dataclasses.replace(batch, created=created))
    async with repo.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM reservations WHERE sku = ANY(%s)", ([sku, other],)
        )
        assert await cur.fetchone() == (0,)
    rows = await repo.stock_rows([sku, other])
    assert [(r.reserved, r.sold) for r in rows.values()] == [(0, 0), (0, 0)]
    await repo.write_batch(batch)  # the batch as the shard made it is written
    assert (await repo.stock_rows([sku]))[sku].reserved == 1
