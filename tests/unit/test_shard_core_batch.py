"""ShardCore's batch path over the in-memory repository: the wire form, counter ids, the
cart fence, customer totals only under a limit, and batches storage refuses (ADR 0017)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from matchday.domain.errors import CartClosed, InvalidInput, LimitExceeded, Unavailable
from matchday.inventory.commands import (
    AdjustLimits,
    Commit,
    Extend,
    Outcome,
    Release,
    ReservationView,
    Reserve,
    Resize,
)
from matchday.inventory.ids import key_of_hold, request_key, reservation_id
from matchday.inventory.records import BatchRefused, BatchWrite
from matchday.inventory.routing import Router
from matchday.inventory.shard import MAX_ATTEMPTS, ShardCore
from matchday.inventory.wire import RESERVATION, outcome_from_wire, to_wire
from tests.fakes import FakeShardRepository, ManualClock

SKU = "JERSEY-AWAY-L"
TTL = 300.0


@pytest.fixture
def repo() -> FakeShardRepository:
    r = FakeShardRepository()
    r.add_sku(SKU, 10)
    return r


async def started(repo: FakeShardRepository, shard_id: int = 0, **kw: Any) -> ShardCore:
    core = ShardCore(shard_id, Router(1, 3), repo, clock=ManualClock(), **kw)
    await core.start()
    return core


def reserve(rid: str, cart: str = "cart-1", qty: int = 1, customer: str = "fan-1") -> Reserve:
    return Reserve(rid, SKU, qty, cart, customer, TTL)


def held(outcome: Outcome) -> ReservationView:
    assert outcome.error is None, outcome.error
    assert isinstance(outcome.value, ReservationView)
    return outcome.value


# -- the wire form and the ids -----------------------------------------------------------------


async def test_the_lean_path_takes_plain_tuples_and_answers_plain_tuples(
    repo: FakeShardRepository,
) -> None:
    core = await started(repo)
    wire = to_wire(reserve("req-1"))

    [out] = await core.apply_wire([wire])

    assert type(out) is tuple and out[0] == RESERVATION
    assert all(type(x) in (int, float, str, type(None)) for x in out)
    assert outcome_from_wire(out).value == repo.reservations[out[1]]
    assert await core.apply_wire([wire]) == [out]  # a retry: the same tuple


async def test_reservation_ids_come_from_request_ids_and_tell_nothing_of_sales(
    repo: FakeShardRepository,
) -> None:
    """A hold's id is its reserve's request key in hex (ADR 0034): unique across shards and
    restarts because request ids are, and a hash, so two ids do not count the sales made
    between them."""
    for shard in (1, 2, 3):
        repo.add_sku(f"PINNED-{shard}", 100, owner=shard)
        repo.pins[f"PINNED-{shard}"] = shard
    ids: list[str] = []
    asked: list[str] = []
    for _ in range(2):  # two incarnations of each shard
        for shard in (1, 2, 3):
            core = await started(repo, shard)
            batch = [Reserve(f"req-{shard}-{len(ids)}-{i}", f"PINNED-{shard}", 1, "c", "f", TTL)
                     for i in range(20)]  # fmt: skip
            asked += [m.request_id for m in batch]
            ids += [held(o).reservation_id for o in await core.apply(batch)]

    assert len(set(ids)) == len(ids) == 120
    assert ids == [reservation_id(r) for r in asked]
    assert all(re.fullmatch(r"r[0-9a-f]{8}\.[0-9a-f]{8}", i) for i in ids)
    assert [key_of_hold(i) for i in ids] == [request_key(r) for r in asked]
    numbers = [int(i[1:].replace(".", ""), 16) for i in ids[:20]]
    assert sorted(numbers) != numbers or max(numbers) - min(numbers) > 1000


# -- the cart fence ---------------------------------------------------------------------------


async def test_a_reserve_for_a_cart_that_went_to_checkout_is_refused_and_holds_nothing(
    repo: FakeShardRepository,
) -> None:
    core = await started(repo)
    repo.carts["cart-paid"] = "checked_out"
    repo.carts["cart-open"] = "open"

    late, other, unknown = await core.apply(
        [reserve("req-1", "cart-paid"), reserve("req-2", "cart-open"), reserve("req-3", "cli")]
    )

    assert isinstance(late.error, CartClosed)
    assert late.error.args == ("cart-paid", "checked_out")
    assert (late.error.http_status, late.error.retryable) == (409, False)
    # The rest of the batch is applied once, in the same call, without a recovery.
    assert held(other).cart_id == "cart-open"
    assert held(unknown).cart_id == "cli"  # a cart the shop never made counts as open
    assert {r.cart_id for r in repo.reservations.values()} == {"cart-open", "cli"}
    assert (repo.skus[SKU].reserved, core.ledgers[SKU].reserved) == (2, 2)
    assert core.recoveries == 1
    # The refusal is the request's first answer.
    repo.carts["cart-paid"] = "open"
    [again] = await core.apply([reserve("req-1", "cart-paid")])
    assert isinstance(again.error, CartClosed)


async def test_a_closed_cart_refuses_a_growing_resize_only(repo: FakeShardRepository) -> None:
    core = await started(repo)
    a, b, c = (held(o) for o in await core.apply(
        [reserve("req-a", "cart-9", 2), reserve("req-b", "cart-9", 2), reserve("req-c", "cart-9")]
    ))  # fmt: skip
    repo.carts["cart-9"] = "checked_out"  # checkout took the cart with these three lines

    grow, shrink, extend, commit, release = await core.apply(
        [
            Resize("req-1", SKU, a.reservation_id, 3),
            Resize("req-2", SKU, b.reservation_id, 1),
            Extend("req-3", SKU, a.reservation_id, 900),
            Commit("req-4", SKU, c.reservation_id, "order-1"),
            Release("req-5", SKU, b.reservation_id),
        ]
    )

    assert isinstance(grow.error, CartClosed)
    assert [o.error for o in (shrink, extend, commit, release)] == [None] * 4
    assert repo.reservations[a.reservation_id].qty == 2
    assert (repo.skus[SKU].reserved, repo.skus[SKU].sold) == (2, 1)


async def test_a_batch_storage_keeps_refusing_is_answered_unavailable_with_memory_intact(
    repo: FakeShardRepository,
) -> None:
    class Refusing(FakeShardRepository):
        attempts = 0

        async def write_batch(self, batch: BatchWrite) -> None:
            self.attempts += 1
            raise BatchRefused(moved=False, duplicate=False)

    refusing = Refusing()
    refusing.add_sku(SKU, 10)
    core = await started(refusing)

    [out] = await core.apply([reserve("req-1")])

    assert isinstance(out.error, Unavailable) and out.error.retryable
    assert refusing.attempts == MAX_ATTEMPTS
    assert (core.ledgers[SKU].reserved, core.ledgers[SKU].held) == (0, {})
    assert core.healthy and core.recoveries == 1


async def test_a_request_whose_journal_key_collides_is_refused_alone(
    repo: FakeShardRepository,
) -> None:
    core = await started(repo, dedupe_window_s=0.0)  # no look-ups up front
    repo.collisions.add("req-unlucky")

    unlucky, other = await core.apply([reserve("req-unlucky"), reserve("req-2")])

    assert isinstance(unlucky.error, InvalidInput) and unlucky.error.field == "request_id"
    assert held(other).cart_id == "cart-1"
    assert repo.skus[SKU].reserved == 1 and core.recoveries == 1


# -- customer totals -------------------------------------------------------------------------


async def test_a_limit_set_anew_counts_what_each_customer_holds_and_bought_before_it(
    repo: FakeShardRepository,
) -> None:
    core = await started(repo)
    bought = held((await core.apply([reserve("req-1", qty=2)]))[0])
    await core.apply([Commit("req-2", SKU, bought.reservation_id, "order-1")])
    await core.apply([reserve("req-3", qty=1), reserve("req-4", qty=1, customer="fan-2")])
    assert repo.customer_units == {}  # no limit: no totals kept or written

    [limited] = await core.apply([AdjustLimits("req-5", SKU, per_customer_limit=4)])
    assert limited.error is None
    assert repo.customer_units == {(SKU, "fan-1"): 3, (SKU, "fan-2"): 1}
    [over] = await core.apply([reserve("req-6", qty=2)])
    assert isinstance(over.error, LimitExceeded)
    assert over.error.args == (SKU, 4, 2, 3, "per-customer")

    restarted = await started(repo)  # the totals are durable
    assert restarted.ledgers[SKU].customer_units == {"fan-1": 3, "fan-2": 1}
    await restarted.apply([AdjustLimits("req-7", SKU, per_customer_limit=None)])
    assert repo.customer_units == {}  # dropped with the limit
    assert (await started(repo)).ledgers[SKU].customer_units is None


# -- the answer cache --------------------------------------------------------------------------


async def test_the_cache_holds_at_most_its_size_in_answers(repo: FakeShardRepository) -> None:
    repo.add_sku("BIG", 1000)
    core = await started(repo, cache_size=100)
    for b in range(10):
        await core.apply([Reserve(f"req-{b}-{i}", "BIG", 1, "c", "f", TTL) for i in range(30)])
        assert core.stats()["cached_requests"] <= 100 + 30
    assert core.stats()["cached_requests"] <= 100


# -- after a recovery ---------------------------------------------------------------------------


async def test_every_recovery_ends_with_the_after_recovery_hook(repo: FakeShardRepository) -> None:
    calls: list[str] = []
    core = await started(repo, after_recovery=lambda: calls.append("settled"))
    assert calls == ["settled"]
    repo.fail_writes = 1
    await core.apply([reserve("req-1")])  # a failed write: recovery before the next batch
    await core.apply([reserve("req-2")])
    assert calls == ["settled"] * 2 and core.recoveries == 2


def test_settling_the_heap_freezes_what_recovery_loaded_and_collects_less_often() -> None:
    import gc

    from actors.inventory import GC_GEN0_THRESHOLD, settle_heap

    threshold = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
