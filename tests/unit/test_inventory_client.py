"""InventoryClient against real ShardCores over one in-memory repository, without Ray.

``send(shard_id, batch)`` is a fake actor call: it records what was sent and hands the batch
to that shard's ShardCore. Tests make it fail the way a dying actor does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from matchday.domain.errors import InvalidInput, OutOfStock, Unavailable
from matchday.inventory import client as client_module
from matchday.inventory.client import InventoryClient
from matchday.inventory.commands import ReservationView, Reserve
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.inventory.wire import WireMutation, WireOutcome, is_error, value_of
from tests.fakes import FakeShardRepository, ManualClock

SHARDS = 2
TTL = 300.0


def sku_owned_by(router: Router, shard_id: int, skip: int = 0) -> str:
    """The ``skip``-th SKU name the router's hash ring gives to ``shard_id``."""
    found = 0
    for i in range(1000):
        sku = f"SKU-{i}"
        if router.owner(sku) == shard_id:
            if found == skip:
                return sku
            found += 1
    raise AssertionError(f"not enough SKUs hash to shard {shard_id}")


class FakeShards:
    """One ShardCore per shard id, all over the same repository; ``send`` is the actor call."""

    def __init__(self, repo: FakeShardRepository, clock: ManualClock) -> None:
        self.repo = repo
        self.clock = clock
        self.cores = {sid: self.incarnation(sid) for sid in range(SHARDS)}
        self.calls: list[tuple[int, list[str]]] = []
        # Called before the shard sees the batch; may raise to simulate a dead actor.
        self.before: Callable[[int, list[WireMutation]], Awaitable[None]] | None = None
        # Called after the shard answered; may raise to simulate an answer lost in transit.
        self.after: (
            Callable[[int, list[WireMutation], list[WireOutcome]], Awaitable[None]] | None
        ) = None

    def incarnation(self, shard_id: int) -> ShardCore:
        return ShardCore(shard_id, Router(SHARDS), self.repo, clock=self.clock)

    async def send(self, shard_id: int, batch: list[WireMutation]) -> list[WireOutcome]:
        assert all(type(m) is tuple for m in batch), "mutations cross Ray as plain tuples"
        self.calls.append((shard_id, [m[1] for m in batch]))
        await asyncio.sleep(0)  # an actor hop: let other callers queue up meanwhile
        if self.before is not None:
            await self.before(shard_id, batch)
        outcomes = await self.cores[shard_id].apply_wire(list(batch))
        if self.after is not None:
            await self.after(shard_id, batch, outcomes)
        return outcomes


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "BACKOFF_S", 0.001)
    monkeypatch.setattr(client_module, "MAX_BACKOFF_S", 0.005)


@pytest.fixture
def repo() -> FakeShardRepository:
    return FakeShardRepository()


@pytest.fixture
def shards(repo: FakeShardRepository) -> FakeShards:
    return FakeShards(repo, ManualClock())


def make_client(shards: FakeShards, *, in_flight: int = 2, retries: int = 6) -> InventoryClient:
    return InventoryClient(shards.send, Router(SHARDS), in_flight=in_flight, retries=retries)


def held_units(repo: FakeShardRepository, sku: str) -> int:
    return sum(r.qty for r in repo.reservations.values() if r.sku == sku and r.status == "held")


# -- coalescing --------------------------------------------------------------------------------


async def test_concurrent_reserves_from_many_tasks_coalesce_into_few_send_calls(
    repo: FakeShardRepository, shards: FakeShards
) -> None:
    router = Router(SHARDS)
    skus = [sku_owned_by(router, 0), sku_owned_by(router, 1)]
    for sku in skus:
        repo.add_sku(sku, 1000, owner=router.owner(sku))
    client = make_client(shards, in_flight=2)
    callers = 200

    views = await asyncio.gather(
        *(
            client.reserve(f"req-{i}", skus[i % 2], 1, f"cart-{i}", f"cust-{i}", TTL)
            for i in range(callers)
        )
    )

    assert len({v.reservation_id for v in views}) == callers
    assert [v.sku for v in views] == [skus[i % 2] for i in range(callers)]
    # Every call went to the shard that owns its SKUs, and there were few of them.
    for shard_id, request_ids in shards.calls:
        assert {int(r.split("-")[1]) % 2 for r in request_ids} == {shard_id}
    assert sum(len(ids) for _, ids in shards.calls) == callers
    assert len(shards.calls) <= 8
    assert max(len(ids) for _, ids in shards.calls) >= callers // 4
    assert repo.writes == len(shards.calls)  # one group commit per call
    for sku in skus:
        assert repo.skus[sku].reserved == callers // 2
        assert held_units(repo, sku) == callers // 2
    stats = client.stats()
    assert sum(batches for batches, _ in stats.values()) == len(shards.calls)
    assert sum(items for _, items in stats.values()) == callers


# -- redirects ------------------------------------------------------------------------------------


async def test_wrong_shard_makes_the_client_pin_the_sku_and_retry_at_the_owner(
    repo: FakeShardRepository, shards: FakeShards
) -> None:
    ring = Router(SHARDS)
    sku = sku_owned_by(ring, 0)
    repo.add_sku(sku, 10, owner=0)
    repo.pins[sku] = 1  # an operator moved it to shard 1; this client has not heard yet
    client = make_client(shards)
    assert client.router.owner(sku) == 0

    view = await client.reserve("req-1", sku, 2, "cart-1", "cust-1", TTL)

    assert view.qty == 2
    assert client.router.pins[sku] == 1
    assert shards.calls == [(0, ["req-1"]), (1, ["req-1"])]
    assert repo.owner[sku] == 1
    assert repo.skus[sku].reserved == 2

    # From now on the client goes straight to the owner.
    await client.reserve("req-2", sku, 1, "cart-2", "cust-2", TTL)
    assert shards.calls[-1] == (1, ["req-2"])
    assert len(shards.calls) == 3
    assert repo.skus[sku].reserved == 3


# -- retries ------------------------------------------------------------------------------------


async def test_a_send_that_raises_after_the_shard_applied_is_retried_with_the_same_request_id_and_gets_the_first_answer(  # noqa: E501
    repo: FakeShardRepository, shards: FakeShards
) -> None:
    sku = sku_owned_by(Router(SHARDS), 1)
    repo.add_sku(sku, 10, owner=1)
    applied: list[WireOutcome] = []

    async def die_after_applying(
        shard_id: int, batch: list[WireMutation], out: list[WireOutcome]
    ) -> None:
        if not applied:
            applied.extend(out)
            raise ConnectionError("actor died before answering")

    shards.after = die_after_applying
    client = make_client(shards)

    view = await client.reserve("req-1", sku, 3, "cart-1", "cust-1", TTL)

    assert len(applied) == 1 and not is_error(applied[0])
    assert view == value_of(applied[0])
    assert shards.calls == [(1, ["req-1"]), (1, ["req-1"])]
    assert repo.skus[sku].reserved == 3
    assert len(repo.reservations) == 1
    assert repo.writes == 1


async def test_a_retry_that_reaches_a_restarted_shard_gets_the_first_answer_from_the_journal(
    repo: FakeShardRepository, shards: FakeShards
) -> None:
    sku = sku_owned_by(Router(SHARDS), 0)
    repo.add_sku(sku, 10, owner=0)
    applied: list[WireOutcome] = []

    async def crash_and_restart(
        shard_id: int, batch: list[WireMutation], out: list[WireOutcome]
    ) -> None:
        if not applied:
            applied.extend(out)
            shards.cores[shard_id] = shards.incarnation(shard_id)  # Ray restarts the actor
            raise ConnectionError("actor died before answering")

    shards.after = crash_and_restart
    client = make_client(shards)

    view = await client.reserve("req-1", sku, 4, "cart-1", "cust-1", TTL)

    assert view == value_of(applied[0])
    assert [ids for _, ids in shards.calls] == [["req-1"], ["req-1"]]
    assert shards.cores[0].epoch == 2  # the answer came from the new incarnation
    assert repo.skus[sku].reserved == 4
    assert len(repo.reservations) == 1


async def test_a_send_that_raises_before_the_shard_saw_the_batch_is_retried_and_applied_once(
    repo: FakeShardRepository, shards: FakeShards
) -> None:
    sku = sku_owned_by(Router(SHARDS), 0)
    repo.add_sku(sku, 10, owner=0)
    failures = [ConnectionError("actor restarting"), ConnectionError("actor restarting")]

    async def die_first(shard_id: int, batch: list[WireMutation]) -> None:
        if failures:
            raise failures.pop()

    shards.before = die_first
    client = make_client(shards)

    view = await client.reserve("req-1", sku, 1, "cart-1", "cust-1", TTL)

    assert view.status == "held"
    assert [ids for _, ids in shards.calls] == [["req-1"]] * 3
    assert repo.skus[sku].reserved == 1
    assert len(repo.reservations) == 1


async def test_an_unavailable_answer_from_a_failed_write_is_retried_until_it_succeeds(
    repo: FakeShardRepository, shards: FakeShards
) -> None:
    sku = sku_owned_by(Router(SHARDS), 1)
    repo.add_sku(sku, 10, owner=1)
    repo.fail_writes = 2
    client = make_client(shards)

    view = await client.reserve("req-1", sku, 2, "cart-1", "cust-1", TTL)

    assert view.qty == 2
    assert len(shards.calls) == 3
    assert repo.skus[sku].reserved == 2
    assert len(repo.reservations) == 1


async def test_after_the_retry_budget_is_spent_the_caller_gets_unavailable(
    repo: FakeShardRepository, shards: FakeShards
) -> None:
    sku = sku_owned_by(Router(SHARDS), 0)
    repo.add_sku(sku, 10, owner=0)

    async def always_dead(shard_id: int, batch: list[WireMutation]) -> None:
        raise ConnectionError("actor is gone")

    shards.before = always_dead
    client = make_client(shards, retries=2)

    with pytest.raises(Unavailable):
        await client.reserve("req-1", sku, 1, "cart-1", "cust-1", TTL)
    outcome = await client.submit(Reserve("req-2", sku, 1, "cart-2", "cust-2", TTL))

    assert isinstance(outcome.error, Unavailable)
    assert outcome.error.retryable
    assert [ids for _, ids in shards.calls] == [["req-1"]] * 3 + [["req-2"]] * 3
    assert repo.writes == 0
    assert repo.skus[sku].reserved == 0


async def test_a_final_error_is_not_retried(repo: FakeShardRepository, shards: FakeShards) -> None:
    sku = sku_owned_by(Router(SHARDS), 0)
    repo.add_sku(sku, 1, owner=0)
    client = make_client(shards)

    with pytest.raises(OutOfStock):
        await client.reserve("req-1", sku, 2, "cart-1", "cust-1", TTL)

    assert shards.calls == [(0, ["req-1"])]


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.reserve("req-1", "SKU-0", 0, "cart-1", "cust-1", TTL),
        lambda c: c.reserve("req-1", "SKU-0", 1, "cart-1", "cust-1", 0.0),
        lambda c: c.reserve("req 1", "SKU-0", 1, "cart-1", "cust-1", TTL),
        lambda c: c.reserve("req-1", "no such/sku", 1, "cart-1", "cust-1", TTL),
        lambda c: c.release("req-1", "SKU-0", ""),
        lambda c: c.commit("req-1", "SKU-0", "r-1", "bad order id"),
        lambda c: c.restock("req-1", "SKU-0", 0),
        lambda c: c.set_on_hand("req-1", "SKU-0", -1),
        lambda c: c.adjust_limits("req-1", "SKU-0", per_customer_limit=0),
    ],
    ids=[
        "zero-qty",
        "zero-ttl",
        "bad-request-id",
        "bad-sku",
        "empty-reservation-id",
        "bad-order-id",
        "zero-restock",
        "negative-on-hand",
        "zero-limit",
    ],
)
async def test_invalid_input_is_refused_before_it_reaches_send(
    repo: FakeShardRepository,
    shards: FakeShards,
    call: Callable[[InventoryClient], Awaitable[object]],
) -> None:
    repo.add_sku("SKU-0", 10, owner=Router(SHARDS).owner("SKU-0"))
    client = make_client(shards)

    with pytest.raises(InvalidInput):
        await call(client)

    assert shards.calls == []
    assert repo.writes == 0


async def test_a_valid_request_is_sent_once_and_answered(
    repo: FakeShardRepository, shards: FakeShards
) -> None:
    sku = sku_owned_by(Router(SHARDS), 1)
    repo.add_sku(sku, 10, owner=1)
    client = make_client(shards)

    view = await client.reserve("req-1", sku, 2, "cart-1", "cust-1", TTL)

    assert isinstance(view, ReservationView)
    assert (view.sku, view.qty, view.cart_id, view.customer_id) == (sku, 2, "cart-1", "cust-1")
    assert shards.calls == [(1, ["req-1"])]
    committed = await client.commit("req-2", sku, view.reservation_id, "order-1")
    assert committed.status == "committed"
    assert (repo.skus[sku].reserved, repo.skus[sku].sold) == (0, 2)


@pytest.mark.parametrize(
    ("ms", "seconds"), [(None, client_module.LINGER_S), (0.0, 0.0), (5.0, 0.005)]
)
def test_the_linger_comes_from_the_settings(ms: float | None, seconds: float) -> None:
    from actors.client import connect_client
    from matchday.settings import Settings

    settings = Settings() if ms is None else Settings(client_linger_ms=ms)
    handles = {
        sid: object() for sid in Router(settings.shards, settings.dedicated_shards).all_shards
    }
    client = connect_client(settings, handles)
    assert {c._linger_s for c in client._coalescers.values()} == {seconds}
