"""ShardCore over the in-memory repository: group commit, idempotency, fencing, recovery, expiry.

No PostgreSQL, no Ray: ``tests.fakes.FakeShardRepository`` stands in for storage and
``ManualClock`` for time (except in the tests of ``run_timers``, which use real time).
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest

from matchday.domain.errors import (
    InvalidInput,
    OutOfStock,
    ReservationClosed,
    StaleEpoch,
    Unavailable,
    UnknownSku,
    WrongShard,
)
from matchday.inventory.commands import (
    Commit,
    Expire,
    Extend,
    Mutation,
    Outcome,
    Policy,
    Release,
    ReservationView,
    Reserve,
    Restock,
    SetOnHand,
    StockView,
)
from matchday.inventory.journal import events_of
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.inventory.wire import EXPIRE, outcome_to_wire
from tests.fakes import FakeShardRepository, ManualClock

JERSEY = "JERSEY-HOME-M"
SCARF = "SCARF-RED"
TTL = 300.0


# -- helpers ---------------------------------------------------------------------------------


class SpyRepository(FakeShardRepository):
    """Counts the journal look-ups the shard makes."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups: list[list[str]] = []

    async def lookup_results(self, request_ids: list[str]) -> dict[str, Any]:
        self.lookups.append(list(request_ids))
        return await super().lookup_results(request_ids)


def sku_owned_by(router: Router, shard_id: int) -> str:
    """A SKU name the router's hash ring gives to ``shard_id``."""
    for i in range(1000):
        sku = f"SKU-{i}"
        if router.owner(sku) == shard_id:
            return sku
    raise AssertionError(f"no SKU hashes to shard {shard_id}")


def reserve(
    request_id: str,
    sku: str = JERSEY,
    qty: int = 1,
    *,
    customer: str = "cust-1",
    cart: str = "cart-1",
    ttl: float = TTL,
) -> Reserve:
    return Reserve(request_id, sku, qty, cart, customer, ttl)


async def started(
    repo: FakeShardRepository,
    clock: ManualClock | None = None,
    *,
    shard_id: int = 0,
    router: Router | None = None,
    **kwargs: Any,
) -> ShardCore:
    core = ShardCore(shard_id, router or Router(1), repo, clock=clock or ManualClock(), **kwargs)
    await core.start()
    return core


async def one(core: ShardCore, m: Mutation) -> Outcome:
    [outcome] = await core.apply([m])
    return outcome


def view(outcome: Outcome) -> ReservationView:
    """The reservation a successful outcome carries."""
    assert outcome.error is None, outcome.error
    assert isinstance(outcome.value, ReservationView)
    return outcome.value


def snapshot(repo: FakeShardRepository) -> dict[str, Any]:
    """Everything storage holds, to compare before and after."""
    return copy.deepcopy(
        {
            "skus": repo.skus,
            "owner": repo.owner,
            "reservations": repo.reservations,
            "customer_units": repo.customer_units,
            "journal": repo.entries,
            "requests": repo.requests,
            "outbox": repo.outbox,
            "writes": repo.writes,
        }
    )


def stock_in_repo(repo: FakeShardRepository, sku: str) -> tuple[int, int, int]:
    row = repo.skus[sku]
    return row.on_hand, row.reserved, row.sold


def stock_in_memory(core: ShardCore, sku: str) -> tuple[int, int, int]:
    view = core.stock(sku).unwrap()
    assert isinstance(view, StockView)
    return view.on_hand, view.reserved, view.sold


@pytest.fixture
def repo() -> FakeShardRepository:
    r = FakeShardRepository()
    r.add_sku(JERSEY, 10)
    r.add_sku(SCARF, 5)
    return r


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


# -- group commit ------------------------------------------------------------------------------


async def test_a_batch_of_reserves_is_written_in_one_write_with_a_journal_row_each_and_one_outbox_entry_per_sku(  # noqa: E501
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    core = await started(repo, clock)
    assert repo.writes == 0

    batch: list[Mutation] = [
        reserve("req-1", JERSEY, 2, customer="c1"),
        reserve("req-2", SCARF, 1, customer="c2"),
        reserve("req-3", JERSEY, 3, customer="c3"),
    ]
    outcomes = await core.apply(batch)

    assert [o.error for o in outcomes] == [None, None, None]
    assert repo.writes == 1
    assert set(repo.requests) == {"req-1", "req-2", "req-3"}
    # The first answers are not stored but derived from the journal, exactly.
    answers = await repo.lookup_results(["req-1", "req-2", "req-3"])
    assert answers == {
        m.request_id: outcome_to_wire(o) for m, o in zip(batch, outcomes, strict=True)
    }
    assert repo.outbox == [(1, [JERSEY, SCARF])]  # one outbox row for the batch
    carts = {r.reservation_id: r.cart_id for r in repo.reservations.values()}
    events = events_of(repo.entries, carts, {})
    assert [(e["type"], e["qty"], e["available"]) for e in events[JERSEY]] == [
        ("reserved", 2, 8),
        ("reserved", 3, 5),
    ]
    assert [(e["type"], e["qty"]) for e in events[SCARF]] == [("reserved", 1)]
    assert stock_in_repo(repo, JERSEY) == (10, 5, 0)
    assert stock_in_repo(repo, SCARF) == (5, 1, 0)
    held = {r.reservation_id: r for r in repo.reservations.values() if r.status == "held"}
    assert {view(o).reservation_id for o in outcomes} == set(held)
    assert repo.customer_units == {}  # no per-customer limit on either SKU: no totals


async def test_a_batch_with_only_errors_writes_nothing(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    core = await started(repo, clock)

    outcomes = await core.apply([reserve("req-1", JERSEY, 11), Release("req-2", JERSEY, "r-nope")])

    assert isinstance(outcomes[0].error, OutOfStock)
    assert outcomes[1].error is not None
    assert repo.writes == 0
    assert repo.entries == []


# -- idempotency ------------------------------------------------------------------------------


async def test_a_request_id_repeated_in_the_same_batch_gets_the_first_answer_and_reserves_once(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    core = await started(repo, clock)

    first, second = await core.apply([reserve("req-1", qty=2), reserve("req-1", qty=2)])

    assert first.error is None
    assert second == first
    assert stock_in_repo(repo, JERSEY) == (10, 2, 0)
    assert len(repo.reservations) == 1


async def test_a_request_id_repeated_in_a_later_batch_gets_the_first_answer_without_a_write(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    core = await started(repo, clock)
    first = await one(core, reserve("req-1", qty=2))
    writes = repo.writes

    clock.advance(5)
    again = await one(core, reserve("req-1", qty=2))

    assert again == first
    assert repo.writes == writes
    assert stock_in_repo(repo, JERSEY) == (10, 2, 0)
    assert stock_in_memory(core, JERSEY) == (10, 2, 0)


async def test_a_request_id_repeated_after_a_restart_is_answered_from_the_journal(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    old = await started(repo, clock)
    first = await one(old, reserve("req-1", qty=2))
    released = await one(old, Release("req-2", JERSEY, view(first).reservation_id))
    assert released.error is None
    writes = repo.writes

    clock.advance(60)
    new = await started(repo, clock)  # a fresh incarnation: empty cache, same storage
    assert new.epoch == old.epoch + 1
    again_reserve, again_release = await new.apply(
        [reserve("req-1", qty=2), Release("req-2", JERSEY, view(first).reservation_id)]
    )

    assert again_reserve == first
    assert again_release == released
    assert repo.writes == writes
    assert stock_in_repo(repo, JERSEY) == (10, 0, 0)
    assert stock_in_memory(new, JERSEY) == (10, 0, 0)


async def test_a_rejected_reserve_is_answered_the_same_on_retry_even_after_a_restock(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    core = await started(repo, clock)
    first = await one(core, reserve("req-1", qty=20))
    assert isinstance(first.error, OutOfStock)
    assert (first.error.requested, first.error.available) == (20, 10)

    restocked = await one(core, Restock("req-restock", JERSEY, 50))
    assert restocked.error is None
    again = await one(core, reserve("req-1", qty=20))

    assert isinstance(again.error, OutOfStock)
    assert again.error.args == first.error.args
    assert stock_in_repo(repo, JERSEY) == (60, 0, 0)
    assert stock_in_memory(core, JERSEY) == (60, 0, 0)


async def test_a_retry_whose_answer_the_cache_dropped_gets_its_first_answer_from_the_journal(
    clock: ManualClock,
) -> None:
    repo = SpyRepository()
    repo.add_sku(JERSEY, 10)
    core = await started(repo, clock, cache_size=2, dedupe_window_s=60)
    clock.advance(61)  # past the restart window: a cache miss alone no longer reads the journal

    first = await one(core, reserve("req-1", qty=2))
    await one(core, reserve("req-2", qty=1))  # the cache keeps one generation of one answer
    await one(core, reserve("req-3", qty=1))
    assert repo.lookups == []  # outside the window: no look-up per request
    assert "req-1" not in core._young and "req-1" not in core._old
    writes = repo.writes

    again = await one(core, reserve("req-1", qty=2))

    # Applied as new, refused by the journal's unique request id, answered from the journal.
    assert repo.lookups == [["req-1"]]
    assert again == first
    assert repo.writes == writes
    assert core.recoveries == 1  # the batch's SKUs were reloaded; no recovery
    assert stock_in_repo(repo, JERSEY) == (10, 4, 0)
    assert stock_in_memory(core, JERSEY) == (10, 4, 0)


async def test_a_request_id_repeated_in_a_batch_larger_than_the_cache_still_reserves_once(
    clock: ManualClock,
) -> None:
    # Regression: the in-batch duplicate check once went through the LRU cache only, so a
    # batch larger than cache_size evicted the first copy and applied the duplicate again.
    repo = FakeShardRepository()
    repo.add_sku(JERSEY, 10)
    core = await started(repo, clock, cache_size=1)

    first, _, dup = await core.apply(
        [reserve("req-1", qty=2), reserve("req-2", qty=1), reserve("req-1", qty=2)]
    )

    assert dup == first
    assert stock_in_repo(repo, JERSEY) == (10, 3, 0)


# -- failed writes and recovery -----------------------------------------------------------------


async def test_an_injected_write_failure_answers_every_mutation_of_the_batch_unavailable(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    core = await started(repo, clock)
    before = snapshot(repo)
    repo.fail_writes = 1

    outcomes = await core.apply(
        [reserve("req-1", JERSEY, 2), reserve("req-2", SCARF, 1), Restock("req-3", JERSEY, 5)]
    )

    assert len(outcomes) == 3
    assert all(isinstance(o.error, Unavailable) for o in outcomes)
    assert all(o.error.retryable for o in outcomes if o.error is not None)
    assert core.healthy is False
    assert snapshot(repo) == before


async def test_the_batch_after_a_failed_write_first_recovers_so_nothing_of_the_failed_batch_survives(  # noqa: E501
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    core = await started(repo, clock)
    kept = await one(core, reserve("req-0", JERSEY, 1))
    assert kept.error is None
    repo.fail_writes = 1
    failed = await core.apply(
        [reserve("req-1", JERSEY, 4), reserve("req-2", SCARF, 2), Restock("req-3", SCARF, 7)]
    )
    assert all(isinstance(o.error, Unavailable) for o in failed)
    assert stock_in_memory(core, JERSEY) == (10, 5, 0)  # memory ran ahead of storage...

    outcome = await one(core, reserve("req-9", JERSEY, 1))  # ...until the next batch

    assert outcome.error is None
    assert core.healthy is True
    assert core.recoveries == 2
    for sku in (JERSEY, SCARF):
        assert stock_in_memory(core, sku) == stock_in_repo(repo, sku)
    assert stock_in_repo(repo, JERSEY) == (10, 2, 0)
    assert stock_in_repo(repo, SCARF) == (5, 0, 0)
    assert set(core.ledgers[JERSEY].held) == {
        view(kept).reservation_id,
        view(outcome).reservation_id,
    }
    assert core.ledgers[SCARF].held == {}

    # The failed requests were never answered, so their retries are applied afresh, once.
    retried = await core.apply(
        [reserve("req-1", JERSEY, 4), reserve("req-2", SCARF, 2), Restock("req-3", SCARF, 7)]
    )
    assert [o.error for o in retried] == [None, None, None]
    assert view(retried[0]).reservation_id in repo.reservations
    assert stock_in_repo(repo, JERSEY) == (10, 6, 0)
    assert stock_in_repo(repo, SCARF) == (12, 2, 0)
    for sku in (JERSEY, SCARF):
        assert stock_in_memory(core, sku) == stock_in_repo(repo, sku)


async def test_a_shard_that_cannot_recover_answers_unavailable_and_recovers_later(
    repo: FakeShardRepository, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = await started(repo, clock)
    repo.fail_writes = 1
    await one(core, reserve("req-1"))

    async def down(shard_id: int, epoch: int) -> Any:
        raise ConnectionError("database is down")

    monkeypatch.setattr(repo, "load_shard", down)
    outcome = await one(core, reserve("req-2"))
    assert isinstance(outcome.error, Unavailable)
    assert core.healthy is False

    monkeypatch.undo()
    outcome = await one(core, reserve("req-2"))
    assert outcome.error is None
    assert core.healthy is True
    assert stock_in_repo(repo, JERSEY) == (10, 1, 0)


# -- fencing ----------------------------------------------------------------------------------


async def test_a_newer_incarnation_fences_the_old_one_whose_writes_then_fail_with_stale_epoch(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    old = await started(repo, clock)
    assert (await one(old, reserve("req-1"))).error is None

    new = await started(repo, clock)
    assert new.epoch > old.epoch
    before = snapshot(repo)

    outcomes = await old.apply([reserve("req-2", JERSEY, 2), Restock("req-3", SCARF, 4)])

    assert all(isinstance(o.error, StaleEpoch) for o in outcomes)
    err = outcomes[0].error
    assert isinstance(err, StaleEpoch)
    assert (err.shard_id, err.epoch, err.current) == (0, old.epoch, new.epoch)
    assert old.fenced is True
    assert snapshot(repo) == before

    # Fenced for good: it does not re-claim the shard on its next batch.
    again = await one(old, reserve("req-4"))
    assert isinstance(again.error, StaleEpoch)
    assert repo.epochs[0] == new.epoch
    assert snapshot(repo) == before

    # The new incarnation still writes, and sees only what was committed.
    ok = await one(new, reserve("req-2", JERSEY, 2))
    assert ok.error is None
    assert stock_in_repo(repo, JERSEY) == (10, 3, 0)


async def test_a_superseded_shard_whose_write_failed_does_not_fence_its_successor_on_recovery(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    old = await started(repo, clock)
    repo.fail_writes = 1
    failed = await one(old, reserve("req-1"))
    assert isinstance(failed.error, Unavailable)
    new = await started(repo, clock)  # Ray restarted the shard; the old process lingers

    stale = await one(old, reserve("req-2"))  # the old one recovers on its next batch
    fresh = await one(new, reserve("req-3"))

    assert isinstance(stale.error, StaleEpoch)
    assert fresh.error is None
    assert new.fenced is False


async def test_a_stale_shard_that_needs_to_claim_a_sku_is_fenced_too(clock: ManualClock) -> None:
    repo = FakeShardRepository()
    repo.add_sku(JERSEY, 10, owner=0)
    old = await started(repo, clock)
    repo.add_sku(SCARF, 5, owner=7)  # created after the old shard loaded; routed here by ring
    await started(repo, clock)
    before = snapshot(repo)

    outcome = await one(old, reserve("req-1", SCARF))

    assert isinstance(outcome.error, StaleEpoch)
    assert old.fenced is True
    assert snapshot(repo) == before


# -- ownership ---------------------------------------------------------------------------------


async def test_a_sku_absent_from_storage_is_answered_unknown_sku(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    core = await started(repo, clock)

    outcome = await one(core, reserve("req-1", "NO-SUCH-SKU"))

    assert isinstance(outcome.error, UnknownSku)
    assert outcome.error.sku == "NO-SUCH-SKU"
    assert repo.writes == 0
    assert isinstance(core.stock("NO-SUCH-SKU").error, UnknownSku)

    # Not remembered as the request's answer: once the SKU exists the same request succeeds.
    repo.add_sku("NO-SUCH-SKU", 3)
    outcome = await one(core, reserve("req-1", "NO-SUCH-SKU"))
    assert outcome.error is None
    assert stock_in_repo(repo, "NO-SUCH-SKU") == (3, 1, 0)


async def test_a_sku_pinned_to_another_shard_is_answered_wrong_shard_naming_the_owner(
    clock: ManualClock,
) -> None:
    router = Router(2)
    sku = sku_owned_by(router, 0)
    repo = FakeShardRepository()
    repo.add_sku(sku, 10, owner=0)
    repo.pins[sku] = 1
    core = await started(repo, clock, shard_id=0, router=router)
    assert sku not in core.ledgers  # a pin elsewhere keeps it out of this shard's load

    outcome = await one(core, reserve("req-1", sku))

    assert isinstance(outcome.error, WrongShard)
    assert (outcome.error.sku, outcome.error.owner) == (sku, 1)
    assert outcome.error.retryable
    assert repo.writes == 0
    assert repo.owner[sku] == 0


async def test_a_sku_hashed_to_another_shard_is_answered_wrong_shard_naming_the_owner(
    clock: ManualClock,
) -> None:
    router = Router(2)
    sku = sku_owned_by(router, 1)
    repo = FakeShardRepository()
    repo.add_sku(sku, 10, owner=1)
    core = await started(repo, clock, shard_id=0, router=router)

    outcome = await one(core, reserve("req-1", sku))

    assert isinstance(outcome.error, WrongShard)
    assert (outcome.error.sku, outcome.error.owner) == (sku, 1)
    assert repo.writes == 0
    assert repo.owner[sku] == 1


async def test_a_sku_hashed_here_is_claimed_on_its_first_request(clock: ManualClock) -> None:
    router = Router(2)
    sku = sku_owned_by(router, 1)
    repo = FakeShardRepository()
    repo.add_sku(sku, 10, owner=0)  # recorded elsewhere, but the ring now says shard 1
    core = await started(repo, clock, shard_id=1, router=router)
    assert sku not in core.ledgers

    outcome = await one(core, reserve("req-1", sku, 3))

    assert outcome.error is None
    assert repo.owner[sku] == 1
    assert stock_in_repo(repo, sku) == (10, 3, 0)


async def test_evicted_skus_are_answered_wrong_shard_once_the_pin_exists(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    core = await started(repo, clock)
    held = await one(core, reserve("req-1", JERSEY, 2))
    assert held.error is None

    repo.pins[JERSEY] = 3
    assert await core.evict([JERSEY, "NOT-HERE"]) == [JERSEY]
    assert JERSEY not in core.ledgers

    outcome = await one(core, reserve("req-2", JERSEY))
    assert isinstance(outcome.error, WrongShard)
    assert outcome.error.owner == 3
    # Its pending expiry is dropped along with it.
    clock.advance(TTL + 1)
    assert core.due_expiries(clock.now()) == []
    # Other SKUs are unaffected.
    assert (await one(core, reserve("req-3", SCARF))).error is None
    assert stock_in_repo(repo, JERSEY) == (10, 2, 0)


async def test_adopt_claims_skus_pinned_here_and_refuses_ones_pinned_elsewhere(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    repo.pins[JERSEY] = 1
    core = await started(repo, clock, shard_id=1, router=Router(1, dedicated_shards=1))
    assert core.ledgers == {}

    assert await core.adopt([JERSEY]) == [JERSEY]
    assert repo.owner[JERSEY] == 1
    assert stock_in_memory(core, JERSEY) == (10, 0, 0)

    with pytest.raises(WrongShard) as info:
        await core.adopt([SCARF])  # not pinned: the ring (one shard, 0) owns it
    assert info.value.owner == 0
    with pytest.raises(UnknownSku):
        await core.adopt(["NO-SUCH-SKU"])


async def test_a_sku_claimed_by_another_shard_makes_the_old_owner_redirect_without_recovering(
    clock: ManualClock,
) -> None:
    router = Router(1, dedicated_shards=1)
    repo = FakeShardRepository()
    repo.add_sku(JERSEY, 10, owner=0)
    old = await started(repo, clock, shard_id=0, router=router)
    assert JERSEY in old.ledgers

    repo.pins[JERSEY] = 1
    new = await started(repo, clock, shard_id=1, router=router)
    assert await new.adopt([JERSEY]) == [JERSEY]

    # Its write no longer owns the row: storage refuses it, the shard reloads that SKU alone
    # (it is gone: pinned elsewhere) and answers the redirect in the same call.
    outcome = await one(old, reserve("req-1", JERSEY))
    assert isinstance(outcome.error, WrongShard)
    assert outcome.error.owner == 1
    assert JERSEY not in old.ledgers
    assert old.recoveries == 1
    assert stock_in_repo(repo, JERSEY) == (10, 0, 0)


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        Reserve("req-bad", JERSEY, 0, "cart-1", "cust-1", TTL),
        Reserve("req-bad", JERSEY, True, "cart-1", "cust-1", TTL),
        Reserve("req-bad", JERSEY, 1, "cart-1", "cust-1", 0.0),
        Reserve("req-bad", JERSEY, 1, "cart-1", "cust-1", float("nan")),
        Reserve("", JERSEY, 1, "cart-1", "cust-1", TTL),
        Reserve("req-bad", "bad sku!", 1, "cart-1", "cust-1", TTL),
        Reserve("req-bad", JERSEY, 1, "cart 1", "cust-1", TTL),
        Restock("req-bad", JERSEY, -5),
        SetOnHand("req-bad", JERSEY, -1),
        Commit("req-bad", JERSEY, "r-1", ""),
        Extend("req-bad", JERSEY, "r-1", 10 * 24 * 3600.0),
    ],
    ids=lambda m: type(m).__name__,
)
async def test_invalid_input_is_refused_with_invalid_input_without_a_write(
    repo: FakeShardRepository, clock: ManualClock, bad: Mutation
) -> None:
    core = await started(repo, clock)
    before = snapshot(repo)

    outcomes = await core.apply([bad])

    assert isinstance(outcomes[0].error, InvalidInput)
    assert snapshot(repo) == before
    assert stock_in_memory(core, JERSEY) == (10, 0, 0)


async def test_an_invalid_mutation_does_not_spoil_the_valid_ones_in_its_batch(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    core = await started(repo, clock)

    bad, good = await core.apply([reserve("req-1", qty=0), reserve("req-2", qty=2)])

    assert isinstance(bad.error, InvalidInput)
    assert bad.error.field == "qty"
    assert good.error is None
    assert set(repo.requests) == {"req-2"}
    assert stock_in_repo(repo, JERSEY) == (10, 2, 0)


# -- expiry -----------------------------------------------------------------------------------


async def test_due_expiries_returns_exactly_the_reservations_whose_deadline_passed(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    core = await started(repo, clock)
    a, b, c = await core.apply(
        [
            reserve("req-a", qty=1, ttl=60),
            reserve("req-b", qty=2, ttl=120),
            reserve("req-c", SCARF, qty=1, ttl=300),
        ]
    )
    assert core.due_expiries(clock.now()) == []
    assert core.next_deadline() == view(a).expires_at

    clock.advance(59)
    assert core.due_expiries(clock.now()) == []
    clock.advance(1)  # exactly at the deadline
    due = core.due_expiries(clock.now())
    assert [(e.sku, e.reservation_id) for e in due] == [(JERSEY, view(a).reservation_id)]
    assert core.due_expiries(clock.now()) == []  # popped: not reported twice

    clock.advance(61)
    due += core.due_expiries(clock.now())
    assert [e.reservation_id for e in due] == [
        view(a).reservation_id,
        view(b).reservation_id,
    ]
    assert core.next_deadline() == view(c).expires_at

    outcomes = await core.apply(list(due))

    assert [view(o).status for o in outcomes] == ["expired", "expired"]
    assert stock_in_repo(repo, JERSEY) == (10, 0, 0)
    assert stock_in_memory(core, JERSEY) == (10, 0, 0)
    assert stock_in_repo(repo, SCARF) == (5, 1, 0)
    assert repo.reservations[view(a).reservation_id].status == "expired"
    events = events_of(repo.batches[-1].entries, {}, {})
    assert [e["type"] for e in events[JERSEY]] == ["expired", "expired"]


async def test_due_expiries_skips_a_reservation_extended_meanwhile(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    core = await started(repo, clock)
    held = (await one(core, reserve("req-1", qty=3, ttl=60))).value
    assert isinstance(held, ReservationView)

    clock.advance(30)
    extended = (await one(core, Extend("req-2", JERSEY, held.reservation_id, 120))).value
    assert isinstance(extended, ReservationView)
    assert extended.expires_at == held.expires_at + 90

    clock.advance(31)  # past the original deadline
    assert core.due_expiries(clock.now()) == []
    assert stock_in_memory(core, JERSEY) == (10, 3, 0)

    clock.advance(89)  # at the extended deadline
    due = core.due_expiries(clock.now())
    assert [e.reservation_id for e in due] == [held.reservation_id]
    await core.apply(list[Mutation](due))
    assert stock_in_repo(repo, JERSEY) == (10, 0, 0)


async def test_an_extend_its_hold_already_covers_is_answered_from_memory_and_armed_once(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    """A checkout's extend of an add's hold (900 s against the payment's 720) checks the hold
    and writes nothing: no batch reaches storage, and the deadline is not armed twice."""
    core = await started(repo, clock)
    held = view(await one(core, reserve("req-1", qty=3, ttl=900)))
    written = len(repo.batches)

    clock.advance(100)
    checked = view(await one(core, Extend("chk-1", JERSEY, held.reservation_id, 720)))
    again = view(await one(core, Extend("chk-2", JERSEY, held.reservation_id, 720)))

    assert checked == again == held
    assert len(repo.batches) == written
    clock.advance(800)  # at the add's deadline
    due = core.due_expiries(clock.now())
    assert [e.reservation_id for e in due] == [held.reservation_id]
    await core.apply(list[Mutation](due))
    assert stock_in_repo(repo, JERSEY) == (10, 0, 0)


async def test_an_extend_of_a_released_hold_is_still_refused_when_nothing_is_written(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    core = await started(repo, clock)
    held = view(await one(core, reserve("req-1", qty=3, ttl=900)))
    await one(core, Release("rel-1", JERSEY, held.reservation_id))

    refused = await one(core, Extend("chk-1", JERSEY, held.reservation_id, 720))

    assert isinstance(refused.error, ReservationClosed)


async def test_a_reservation_released_before_its_deadline_is_never_due_and_its_expiry_is_a_no_op(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    core = await started(repo, clock)
    held = (await one(core, reserve("req-1", qty=3, ttl=60))).value
    assert isinstance(held, ReservationView)
    assert (await one(core, Release("req-2", JERSEY, held.reservation_id))).error is None
    writes = repo.writes

    clock.advance(61)
    assert core.due_expiries(clock.now()) == []
    outcome = await one(core, Expire("expire-late", JERSEY, held.reservation_id))

    assert isinstance(outcome.value, StockView)
    assert repo.writes == writes
    assert repo.reservations[held.reservation_id].status == "released"
    assert stock_in_repo(repo, JERSEY) == (10, 0, 0)


async def test_after_a_restart_reservations_that_expired_while_down_are_due_at_once(
    repo: FakeShardRepository, clock: ManualClock
) -> None:
    old = await started(repo, clock)
    short, long_ = await old.apply(
        [reserve("req-1", qty=2, ttl=60), reserve("req-2", qty=1, ttl=3600)]
    )
    del old  # the process dies

    clock.advance(600)
    new = await started(repo, clock)

    deadline = new.next_deadline()
    assert deadline is not None and deadline <= clock.now()
    due = new.due_expiries(clock.now())
    assert [e.reservation_id for e in due] == [view(short).reservation_id]
    await new.apply(list[Mutation](due))
    assert stock_in_repo(repo, JERSEY) == (10, 1, 0)
    assert repo.reservations[view(short).reservation_id].status == "expired"
    assert repo.reservations[view(long_).reservation_id].status == "held"
    assert new.next_deadline() == view(long_).expires_at


async def test_run_timers_submits_expire_mutations_once_due(repo: FakeShardRepository) -> None:
    policy = Policy(min_ttl_s=0.01)
    core = ShardCore(0, Router(1), repo, policy=policy)  # real wall clock
    await core.start()
    submitted: list[list[Any]] = []
    expired = asyncio.Event()

    async def submit(batch: list[Any]) -> list[Outcome]:
        submitted.append(list(batch))
        outcomes = await core.apply(batch)
        expired.set()
        return outcomes

    task = asyncio.get_running_loop().create_task(core.run_timers(submit))
    try:
        started_at = time.monotonic()
        held = (await one(core, reserve("req-1", qty=4, ttl=0.05))).value
        assert isinstance(held, ReservationView)
        await asyncio.wait_for(expired.wait(), 1.0)
        elapsed = time.monotonic() - started_at
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert elapsed >= 0.04  # not before its deadline
    assert len(submitted) == 1
    [expire] = submitted[0]  # as it crosses Ray: a wire tuple
    assert (expire[0], expire[2], expire[3]) == (EXPIRE, JERSEY, held.reservation_id)
    assert repo.reservations[held.reservation_id].status == "expired"
    assert stock_in_repo(repo, JERSEY) == (10, 0, 0)


async def test_run_timers_retries_an_expiry_whose_write_failed_on_an_idle_shard(
    repo: FakeShardRepository,
) -> None:
    # Regression: run_timers popped the deadline, the expiry's write failed, and nothing
    # re-armed it or recovered the shard until some other request arrived.
    core = ShardCore(0, Router(1), repo, policy=Policy(min_ttl_s=0.01))
    await core.start()
    held = (await one(core, reserve("req-1", qty=4, ttl=0.05))).value
    assert isinstance(held, ReservationView)
    repo.fail_writes = 1  # the expiry's write fails once; storage is fine afterwards

    task = asyncio.get_running_loop().create_task(core.run_timers(core.apply))
    try:
        deadline = time.monotonic() + 1.2  # the code's own retry pause is 0.5 s
        while time.monotonic() < deadline:
            if repo.reservations[held.reservation_id].status == "expired":
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert repo.fail_writes == 0  # the expiry was attempted and failed
    assert repo.reservations[held.reservation_id].status == "expired"
    assert stock_in_repo(repo, JERSEY) == (10, 0, 0)


async def test_a_claim_whose_pin_moved_after_the_peek_leaves_the_sku_to_the_new_owner(
    clock: ManualClock,
) -> None:
    # The race of tests/integration/test_pinning_on_ray.py: shard 0 (the ring's owner) read
    # "no pin" and was about to claim the SKU when it was pinned to shard 1, which loaded it
    # (already recorded as its owner, so nothing changed in storage). Had shard 0 claimed
    # it anyway, it would have committed a hold that shard 1 never saw, and shard 1 answered
    # the hold's release unknown_reservation.
    router = Router(1, dedicated_shards=1)
    repo = FakeShardRepository()
    repo.add_sku(JERSEY, 10, owner=1)  # left recorded with shard 1 by an earlier pin
    ring = await started(repo, clock, shard_id=0, router=router)
    dedicated = await started(repo, clock, shard_id=1, router=router)
    assert JERSEY not in ring.ledgers and JERSEY not in dedicated.ledgers

    peek = repo.peek_skus

    async def peek_then_pin(skus: list[str]) -> dict[str, int | None]:
        seen = await peek(skus)
        repo.peek_skus = peek  # type: ignore[method-assign]
        repo.pins[JERSEY] = 1  # a pin commits; its move evicts the others, then adopts
        assert await dedicated.adopt([JERSEY]) == [JERSEY]
        return seen

    repo.peek_skus = peek_then_pin  # type: ignore[method-assign]
    outcome = await one(ring, reserve("req-1", JERSEY))

    assert isinstance(outcome.error, Unavailable) and outcome.error.retryable
    assert JERSEY not in ring.ledgers
    assert repo.owner[JERSEY] == 1 and repo.writes == 0
    # The retry is redirected to the new owner, which holds and releases it.
    again = await one(ring, reserve("req-1", JERSEY))
    assert isinstance(again.error, WrongShard) and again.error.owner == 1
    held = await one(dedicated, reserve("req-1", JERSEY))
    assert held.error is None
    rid = held.value.reservation_id  # type: ignore[union-attr]
    released = await one(dedicated, Release("req-2", JERSEY, rid))
    assert released.error is None


async def test_a_dedicated_shard_loads_only_skus_pinned_to_it_whatever_its_rows_say(
    clock: ManualClock,
) -> None:
    # After an unpin the SKU's row still names the dedicated shard until the ring's owner
    # claims it: a dedicated shard recovering in that window loaded a second copy, and
    # answered from it whoever still routed there (a release: unknown_reservation).
    router = Router(1, dedicated_shards=1)
    repo = FakeShardRepository()
    repo.add_sku(JERSEY, 10, owner=1)  # unpinned, still recorded with shard 1
    repo.add_sku(SCARF, 10, owner=1)
    repo.pins[SCARF] = 1
    dedicated = await started(repo, clock, shard_id=1, router=router)
    assert JERSEY not in dedicated.ledgers and SCARF in dedicated.ledgers

    outcome = await one(dedicated, reserve("req-1", JERSEY))
    assert isinstance(outcome.error, WrongShard) and outcome.error.owner == 0
    ring = await started(repo, clock, shard_id=0, router=router)
    assert (await one(ring, reserve("req-1", JERSEY))).error is None
    assert repo.owner[JERSEY] == 0
