"""Bulk syncs on real PostgreSQL and the engine's shard core: held back while shoppers load
the engine, applied in chunks once it is quiet, resumed after a crash without applying a
line twice, forced, cancelled, and reported (applied, unchanged, rejected, drift)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from matchday.domain.clock import SystemClock
from matchday.metrics import SUPPLIER_SHOP_LOAD, MemoryMetrics
from matchday.settings import Settings
from matchday.suppliers.bulk import BulkSyncs
from matchday.suppliers.load import MutationRate, client_totals
from matchday.suppliers.model import SyncRecord
from matchday.suppliers.runner import SyncRunner
from tests.background import stop
from tests.conftest import uid
from tests.integration.suppliers_stack import SupplierStack, open_supplier_stack

pytestmark = pytest.mark.integration
# Mutations/s above which a sync waits. The surge below does hundreds a second in-process;
# an idle stack does none.
MAX_LOAD = 20.0
TUNING = {"sync_chunk_lines": 10, "sync_immediate_lines": 5, "sync_max_load": MAX_LOAD,
          "sync_lease_s": 5, "sync_idle_s": 0.05}  # fmt: skip


@pytest.fixture(scope="module")  # one stack: tests/integration/shop_stack.py
async def stack(settings: Settings) -> AsyncIterator[SupplierStack]:
    async with open_supplier_stack(settings, **TUNING) as s:
        yield s


def probe(stack: SupplierStack) -> MutationRate:
    """The engine's mutations/s through the stack's client, which carries the shoppers'."""
    assert stack.shop.ctx.stock is not None
    return MutationRate(client_totals(stack.shop.ctx.stock.stats), window_s=0.2)  # type: ignore[attr-defined]


def runner(stack: SupplierStack, load: Any = None, **kw: Any) -> SyncRunner:
    s = stack.services
    return SyncRunner(s.bulk, s.applier, load or probe(stack), **kw)


@contextlib.asynccontextmanager
async def surge(stack: SupplierStack) -> AsyncIterator[None]:
    """Shoppers holding and releasing a unit of a hot SKU as fast as the engine answers."""
    (hot,) = await stack.shop.product(stock=1_000)
    engine: Any = stack.shop.ctx.stock

    async def shop() -> None:
        while True:
            r = await engine.reserve(uid("r"), hot, 1, uid("c"), uid("u"), 60.0)
            await engine.release(uid("x"), hot, r.reservation_id)

    tasks = [asyncio.create_task(shop()) for _ in range(4)]
    try:
        yield
    finally:
        for t in tasks:
            await stop(t)


async def feed_of(stack: SupplierStack, n: int) -> tuple[str, list[str]]:
    """A fresh supplier with ``n`` mapped SKUs of 10 units."""
    sid, _ = await stack.supplier()
    skus = await stack.mapped(sid, stock=10, n=n)
    return sid, skus


def csv_of(skus: list[str], kind: str, qty: Callable[[int], int]) -> bytes:
    return (f"sku,{kind}\n" + "".join(f"S-{s},{qty(i)}\n" for i, s in enumerate(skus))).encode()


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.05)


async def sync_of(stack: SupplierStack, sync_id: str) -> SyncRecord:
    return await stack.services.bulk.get(sync_id)


async def test_a_sync_queued_during_a_surge_waits_then_applies_every_line_once(
    stack: SupplierStack,
) -> None:
    sid, skus = await feed_of(stack, 40)
    sync, _ = await stack.services.bulk.queue(sid, csv_of(skus, "delta", lambda i: 3), "csv")
    assert not sync.forced  # 40 lines: more than may run whatever the load
    metrics = MemoryMetrics()
    done = asyncio.Event()
    worker: asyncio.Task[None] | None = None
    try:
        async with surge(stack):
            await asyncio.sleep(0.3)  # the shoppers are in before the runner starts
            worker = asyncio.create_task(runner(stack, metrics=metrics).run(done))
            await asyncio.sleep(1.5)  # several load checks, all over the threshold
            held = await sync_of(stack, sync.sync_id)
            assert (held.status, held.cursor, held.applied) == ("queued", 0, 0)
            assert metrics.gauges[(SUPPLIER_SHOP_LOAD, ())] > MAX_LOAD
        await until(lambda: _status(stack, sync.sync_id, "done"))
    finally:
        done.set()
        if worker is not None:
            await stop(worker)
    final = await sync_of(stack, sync.sync_id)
    assert (final.applied, final.unchanged, final.rejected, final.progress) == (40, 0, 0, 1.0)
    assert [await stack.shop.stock(s) for s in skus] == [(13, 0, 0)] * 40  # each line once


async def _status(stack: SupplierStack, sync_id: str, status: str) -> bool:
    return (await sync_of(stack, sync_id)).status == status


class Crash(Exception):
    """The runner's process dies after the engine applied a chunk, before it was recorded."""


async def test_a_sync_resumed_after_a_crash_applies_no_line_twice(stack: SupplierStack) -> None:
    sid, skus = await feed_of(stack, 30)
    sync, _ = await stack.services.bulk.queue(sid, csv_of(skus, "delta", lambda i: -2), "csv")
    first = runner(stack, owner="runner-a")
    chunks = 0
    record = first.repo.record

    async def dies_on_the_second_chunk(*args: Any) -> bool:
        nonlocal chunks
        chunks += 1
        if chunks == 2:
            raise Crash()
        return await record(*args)

    async def dead(*args: Any) -> None:
        return None  # a dead process gives nothing back: its lease must run out

    first.repo = _Proxy(first.repo, record=dies_on_the_second_chunk, release=dead)  # type: ignore[assignment]
    with pytest.raises(Crash):
        await first.step()
    left = await sync_of(stack, sync.sync_id)
    assert (left.status, left.cursor, left.applied) == ("running", skus_line(10), 10)
    # 20 of 30 lines went through the engine; the last 10 of them have no outcome recorded.
    assert [(await stack.shop.stock(s))[0] for s in skus] == [8] * 20 + [10] * 10
    later = _Later(120.0)
    bulk = stack.services.bulk
    resumed = SyncRunner(
        BulkSyncs(bulk.suppliers, bulk.syncs, clock=later, tuning=bulk.tuning),
        stack.services.applier, probe(stack), owner="runner-b",
    )  # fmt: skip
    assert await resumed.step()
    final = await sync_of(stack, sync.sync_id)
    assert (final.status, final.applied, final.rejected) == ("done", 30, 0)
    assert [await stack.shop.stock(s) for s in skus] == [(8, 0, 0)] * 30  # -2 once each


def skus_line(n: int) -> int:
    """The CSV file line of the ``n``-th SKU (the header is line 1)."""
    return n + 1


class _Later(SystemClock):
    def __init__(self, ahead_s: float) -> None:
        self.ahead_s = ahead_s

    def now(self) -> float:
        return super().now() + self.ahead_s


class _Proxy:
    """A repository with some methods replaced."""

    def __init__(self, inner: Any, **methods: Any) -> None:
        self._inner = inner
        self._methods = methods

    def __getattr__(self, name: str) -> Any:
        return self._methods.get(name) or getattr(self._inner, name)


async def test_a_forced_sync_runs_during_a_surge_and_reports_what_each_line_came_to(
    stack: SupplierStack,
) -> None:
    sid, skus = await feed_of(stack, 12)
    lines = csv_of(skus, "level", lambda i: 10 if i < 4 else i - 4)  # 4 unchanged, 8 applied
    lines += b"NOT-MAPPED,4\n"
    sync, _ = await stack.services.bulk.queue(sid, lines, "csv")
    assert not sync.forced
    await stack.services.bulk.force(sync.sync_id)
    async with surge(stack):
        assert await runner(stack).step()
    final = await sync_of(stack, sync.sync_id)
    assert (final.status, final.applied, final.unchanged, final.rejected) == ("done", 8, 4, 1)
    report = final.report
    assert report is not None
    assert report["rejected_by_reason"] == {"unmapped": 1}
    assert report["rejected_lines"][0]["supplier_sku"] == "NOT-MAPPED"
    drift = report["drift"]
    assert drift["skus"] == 8 and drift["units"] == sum(10 - k for k in range(8))
    worst = drift["largest"][0]
    assert (worst["sku"], worst["matchday"], worst["supplier"]) == (skus[4], 10, 0)
    assert worst["drift"] == 10  # matchday counted 10 more than the supplier holds
    assert [await stack.shop.stock(s) for s in skus[3:6]] == [(10, 0, 0), (0, 0, 0), (1, 0, 0)]


async def test_a_cancelled_sync_stops_after_its_chunk_and_keeps_what_it_applied(
    stack: SupplierStack,
) -> None:
    sid, skus = await feed_of(stack, 30)
    sync, _ = await stack.services.bulk.queue(sid, csv_of(skus, "delta", lambda i: 1), "csv")
    checks = 0

    class CancelsAfterTheFirstChunk:
        async def load(self) -> float:
            nonlocal checks
            checks += 1
            if checks == 2:  # the check after the first chunk: an operator cancels now
                await stack.services.bulk.cancel(sync.sync_id)
            return 0.0

    assert await runner(stack, CancelsAfterTheFirstChunk()).step()
    final = await sync_of(stack, sync.sync_id)
    assert (final.status, final.applied) == ("cancelled", 10)
    assert [(await stack.shop.stock(s))[0] for s in skus] == [11] * 10 + [10] * 20
    assert not await runner(stack).step()  # nothing left to run
