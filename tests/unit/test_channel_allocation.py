"""Channels' allocations in the ledger, and supplier deltas, without Ray or PostgreSQL.

The shard core over the in-memory repository: an allocation is checked in the same step
that takes the units from the SKU's one count; the channel's counts follow every way a hold
ends (commit, release, expiry, revocation) and survive a recovery (ADR 0028).
"""

from __future__ import annotations

import pytest

from matchday.domain.errors import AllocationExceeded, InvalidInput, OutOfStock
from matchday.inventory.allocation import ChannelStock
from matchday.inventory.commands import (
    Adjust,
    Allocate,
    ChannelReserve,
    Commit,
    Expire,
    Release,
    ReservationView,
    Reserve,
    Resize,
    Restock,
    SetOnHand,
    StockView,
)
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.inventory.wire import ADJUST, ALLOCATE, RESERVE, check
from tests.fakes import FakeShardRepository, ManualClock

SKU = "BOOT-42"
TTL = 300.0


async def core_with(on_hand: int) -> tuple[ShardCore, FakeShardRepository, ManualClock]:
    repo, clock = FakeShardRepository(), ManualClock()
    repo.add_sku(SKU, on_hand)
    core = ShardCore(0, Router(1), repo, clock=clock)
    await core.start()
    return core, repo, clock


def ch_reserve(rid: str, channel: str, qty: int = 1) -> ChannelReserve:
    return ChannelReserve(rid, SKU, qty, f"order-{rid}", f"buyer-{rid}", TTL, channel)


async def one(core: ShardCore, m: object) -> object:
    (out,) = await core.apply([m])  # type: ignore[list-item]
    return out.value if out.error is None else out.error


def test_a_percentage_cap_is_of_every_unit_put_up_for_sale() -> None:
    assert ChannelStock(max_percent=25).cap(10) == 2
    assert ChannelStock(max_units=3).cap(1000) == 3
    assert ChannelStock().cap(10) is None
    assert ChannelStock(max_units=3, held=2, sold=2).remaining(10) == 0


async def test_a_channel_takes_units_up_to_its_allocation_and_is_refused_past_it() -> None:
    core, repo, _ = await core_with(10)
    await one(core, Allocate("al1", SKU, "zalando", max_units=3))
    first = await one(core, ch_reserve("r1", "zalando", 2))
    assert isinstance(first, ReservationView) and first.channel == "zalando"
    refused = await one(core, ch_reserve("r2", "zalando", 2))
    assert isinstance(refused, AllocationExceeded)
    assert (refused.requested, refused.remaining) == (2, 1)
    assert core.ledgers[SKU].reserved == 2  # the refusal took nothing
    assert repo.channels[(SKU, "zalando")] == (3, None, 2, 0)


async def test_a_percentage_allocation_follows_a_restock() -> None:
    core, _, _ = await core_with(10)
    await one(core, Allocate("al1", SKU, "ebay", max_percent=20))
    assert isinstance(await one(core, ch_reserve("r1", "ebay", 2)), ReservationView)
    assert isinstance(await one(core, ch_reserve("r2", "ebay", 1)), AllocationExceeded)
    await one(core, Restock("s1", SKU, 10))
    assert isinstance(await one(core, ch_reserve("r3", "ebay", 2)), ReservationView)


async def test_counts_follow_commit_release_and_expiry() -> None:
    core, repo, clock = await core_with(10)
    await one(core, Allocate("al1", SKU, "ebay", max_units=4))
    held = [await one(core, ch_reserve(f"r{i}", "ebay")) for i in range(3)]
    ids = [h.reservation_id for h in held]  # type: ignore[attr-defined]
    committed = await one(core, Commit("c0", SKU, ids[0], "o-0"))
    assert isinstance(committed, ReservationView) and committed.channel == "ebay"
    await one(core, Release("x1", SKU, ids[1]))
    clock.advance(TTL + 1)
    await one(core, Expire("e2", SKU, ids[2]))
    assert core.ledgers[SKU].channel_view("ebay") == (4, None, 0, 1)
    assert repo.channels[(SKU, "ebay")] == (4, None, 0, 1)
    # Sold units count against the allocation; released and expired ones do not.
    assert isinstance(await one(core, ch_reserve("r9", "ebay", 3)), ReservationView)
    assert isinstance(await one(core, ch_reserve("r10", "ebay", 1)), AllocationExceeded)


async def test_the_shop_and_two_channels_never_sell_a_unit_twice() -> None:
    core, _, _ = await core_with(5)
    await one(core, Allocate("al1", SKU, "ebay", max_units=3))
    await one(core, Allocate("al2", SKU, "amazon", max_units=3))
    batch = []
    for i in range(6):
        batch += [
            Reserve(f"s{i}", SKU, 1, f"cart-{i}", f"fan-{i}", TTL),
            ch_reserve(f"e{i}", "ebay"),
            ch_reserve(f"a{i}", "amazon"),
        ]
    outs = await core.apply(batch)
    won = [o.value for o in outs if o.error is None]
    assert len(won) == 5  # exactly the stock
    assert all(isinstance(o.error, OutOfStock | AllocationExceeded) for o in outs if o.error)
    ledger = core.ledgers[SKU]
    assert ledger.available == 0
    assert ledger.channel_view("ebay")[2] <= 3 and ledger.channel_view("amazon")[2] <= 3


async def test_channel_counts_and_holds_survive_a_recovery() -> None:
    core, repo, _ = await core_with(10)
    await one(core, Allocate("al1", SKU, "ebay", max_units=2))
    held = await one(core, ch_reserve("r1", "ebay"))
    again = ShardCore(0, Router(1), repo, clock=ManualClock())
    await again.start()
    assert again.ledgers[SKU].channel_view("ebay") == (2, None, 1, 0)
    assert again.ledgers[SKU].held[held.reservation_id][-1] == "ebay"  # type: ignore[attr-defined]
    assert isinstance(await one(again, ch_reserve("r2", "ebay")), ReservationView)
    assert isinstance(await one(again, ch_reserve("r3", "ebay")), AllocationExceeded)
    # The same request id after the restart gets its first answer, channel included.
    replay = await one(again, ch_reserve("r1", "ebay"))
    assert replay == held


async def test_a_count_that_revokes_a_channels_hold_gives_its_units_back() -> None:
    core, _, _ = await core_with(3)
    await one(core, Allocate("al1", SKU, "ebay", max_units=3))
    await one(core, Reserve("s1", SKU, 1, "cart-1", "fan-1", TTL))
    await one(core, ch_reserve("r1", "ebay", 2))
    stock = await one(core, SetOnHand("n1", SKU, 1))
    assert isinstance(stock, StockView) and len(stock.revoked) == 1
    assert core.ledgers[SKU].channel_view("ebay") == (3, None, 0, 0)


async def test_a_channels_hold_is_not_resized() -> None:
    core, _, _ = await core_with(5)
    held = await one(core, ch_reserve("r1", "ebay"))
    out = await one(core, Resize("z1", SKU, held.reservation_id, 3))  # type: ignore[attr-defined]
    assert isinstance(out, InvalidInput)


@pytest.mark.parametrize(
    ("wire", "field"),
    [
        ((ALLOCATE, "a", SKU, "EBAY", 1, None), "channel"),
        ((ALLOCATE, "a", SKU, "ebay", 1, 10), "max_percent"),
        ((ALLOCATE, "a", SKU, "ebay", None, 101), "max_percent"),
        ((ALLOCATE, "a", SKU, "ebay", -1, None), "max_units"),
        ((ADJUST, "a", SKU, 0), "delta"),
        ((ADJUST, "a", SKU, True), "delta"),
        ((9, "a", SKU), "kind"),  # REVOKE is journal only
        ((12, "a", SKU, 1, "c", "u", TTL, "Bad Channel"), "channel"),
        ((RESERVE, "a", SKU, 1, "c", "u", TTL, "ebay"), "kind"),  # the shop's has no channel
    ],
)
def test_malformed_channel_and_delta_mutations_are_refused(wire: tuple, field: str) -> None:
    from matchday.inventory.commands import DEFAULT_POLICY

    bad = check(wire, DEFAULT_POLICY)
    assert isinstance(bad, InvalidInput) and bad.field == field


async def test_a_delta_down_is_applied_against_the_engines_own_count() -> None:
    core, _, _ = await core_with(10)
    held = await one(core, Reserve("s1", SKU, 2, "cart-1", "fan-1", TTL))
    await one(core, Commit("c1", SKU, held.reservation_id, "o-1"))  # type: ignore[attr-defined]
    stock = await one(core, Adjust("d1", SKU, -3))
    assert isinstance(stock, StockView)
    assert (stock.on_hand - stock.sold, stock.sold) == (5, 2)  # 8 unsold, minus 3
    floor = await one(core, Adjust("d2", SKU, -100))
    assert isinstance(floor, StockView) and floor.on_hand - floor.sold == 0
    assert await one(core, Adjust("d1", SKU, -3)) == stock  # a retry: the first answer
