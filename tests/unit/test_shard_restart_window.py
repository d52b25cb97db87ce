"""After a restart, which requests the shard looks up in the journal (issue 12).

A retry that changes something again is caught by the journal's unique request key; only a
request that changed nothing may need its first answer looked up. The hot path (reserves
that all write) makes no look-up inside the restart window.
"""

from __future__ import annotations

from matchday.domain.errors import OutOfStock
from matchday.inventory.commands import Release
from tests.fakes import ManualClock
from tests.unit.test_shard_core import (
    JERSEY,
    SpyRepository,
    one,
    reserve,
    started,
    stock_in_memory,
    stock_in_repo,
    view,
)


def spy(on_hand: int = 10) -> SpyRepository:
    repo = SpyRepository()
    repo.add_sku(JERSEY, on_hand)
    return repo


async def test_new_requests_inside_the_window_are_not_looked_up() -> None:
    repo, clock = spy(), ManualClock()
    core = await started(repo, clock, dedupe_window_s=600)

    outs = await core.apply([reserve(f"req-{i}", customer=f"c{i}") for i in range(5)])

    assert [o.error for o in outs] == [None] * 5
    assert repo.lookups == []
    assert stock_in_repo(repo, JERSEY) == (10, 5, 0)


async def test_a_retried_release_beside_new_work_gets_its_first_answer() -> None:
    """The batch writes (a new reserve) without a duplicate: the release, which changed
    nothing this time, is the one request looked up."""
    repo, clock = spy(), ManualClock()
    old = await started(repo, clock)
    held = await one(old, reserve("req-1", qty=2))
    released = await one(old, Release("req-2", JERSEY, view(held).reservation_id))
    assert released.error is None

    new = await started(repo, clock, dedupe_window_s=600)
    repo.lookups.clear()
    fresh, again = await new.apply(
        [reserve("req-3", customer="c3"), Release("req-2", JERSEY, view(held).reservation_id)]
    )

    assert repo.lookups == [["req-2"]]
    assert again == released
    assert fresh.error is None
    assert stock_in_repo(repo, JERSEY) == (10, 1, 0)
    # Cached now: a third try is answered without storage.
    assert await one(new, Release("req-2", JERSEY, view(held).reservation_id)) == released
    assert repo.lookups == [["req-2"]]


async def test_a_retried_reserve_that_would_now_be_refused_gets_its_first_answer() -> None:
    repo, clock = spy(on_hand=2), ManualClock()
    old = await started(repo, clock)
    first = await one(old, reserve("req-1", qty=2))
    # Applied again, the retry finds its own two units held and is refused as out of stock.

    new = await started(repo, clock, dedupe_window_s=600)
    repo.lookups.clear()
    again = await one(new, reserve("req-1", qty=2))

    assert again == first
    assert repo.lookups == [["req-1"]]
    assert stock_in_repo(repo, JERSEY) == (2, 2, 0)
    assert stock_in_memory(new, JERSEY) == (2, 2, 0)


async def test_a_retried_reserve_that_writes_again_is_refused_by_its_key_and_answered() -> None:
    repo, clock = spy(), ManualClock()
    old = await started(repo, clock)
    first = await one(old, reserve("req-1", qty=2))
    writes = repo.writes

    new = await started(repo, clock, dedupe_window_s=600)
    repo.lookups.clear()
    again, fresh = await new.apply([reserve("req-1", qty=2), reserve("req-2", customer="c2")])

    assert again == first
    assert fresh.error is None
    assert repo.lookups == [["req-1", "req-2"]]  # the refused batch's requests, once
    assert repo.writes == writes + 1  # the new reserve, applied again alone
    assert stock_in_repo(repo, JERSEY) == (10, 3, 0)
    assert stock_in_memory(new, JERSEY) == (10, 3, 0)


async def test_a_refusal_that_was_never_journaled_is_answered_anew() -> None:
    repo, clock = spy(on_hand=1), ManualClock()
    old = await started(repo, clock)
    refused = await one(old, reserve("req-1", qty=5))
    assert isinstance(refused.error, OutOfStock)

    new = await started(repo, clock, dedupe_window_s=600)
    repo.lookups.clear()
    again = await one(new, reserve("req-1", qty=5))

    assert isinstance(again.error, OutOfStock)
    assert repo.lookups == [["req-1"]]


async def test_past_the_window_a_request_that_changed_nothing_is_not_looked_up() -> None:
    repo, clock = spy(), ManualClock()
    old = await started(repo, clock)
    held = await one(old, reserve("req-1"))
    await one(old, Release("req-2", JERSEY, view(held).reservation_id))

    new = await started(repo, clock, dedupe_window_s=60)
    clock.advance(61)
    repo.lookups.clear()
    again = await one(new, Release("req-2", JERSEY, view(held).reservation_id))

    assert again.error is not None  # beyond the window a retry is a new request
    assert repo.lookups == []
