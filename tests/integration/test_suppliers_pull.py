"""Pulling a supplier's feed from a real HTTP server on loopback, into real PostgreSQL and
the engine's shard core: conditional requests, a hanging supplier, 500s until the breaker
opens, and a lying feed recorded as rejected with nothing applied."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from matchday.metrics import SUPPLIER_BREAKER_OPEN, SUPPLIER_PULLS, MemoryMetrics
from matchday.settings import Settings
from matchday.suppliers.load import MutationRate
from matchday.suppliers.pull import FeedPuller, Pulls, PullTuning
from matchday.suppliers.runner import SyncRunner
from matchday.suppliers.worker import SupplierWorker
from tests.integration.supplier_server import supplier_server
from tests.integration.suppliers_stack import SupplierStack, open_supplier_stack

pytestmark = pytest.mark.integration
# Tight bounds so a hang or an outage costs the test a second, not the production 20 s.
TUNING = PullTuning(timeout_s=0.4, attempts=2, backoff_s=0.05, breaker_failures=2)


@pytest.fixture(scope="module")  # one stack: tests/integration/shop_stack.py
async def stack(settings: Settings) -> AsyncIterator[SupplierStack]:
    async with open_supplier_stack(settings) as s:
        yield s


async def puller(stack: SupplierStack, metrics: MemoryMetrics) -> tuple[Pulls, httpx.AsyncClient]:
    client = httpx.AsyncClient()
    return Pulls(stack.services.bulk, FeedPuller(client, tuning=TUNING), metrics=metrics), client


def runner(stack: SupplierStack) -> SyncRunner:
    probe = MutationRate(lambda: _zero(), window_s=0.01)
    return SyncRunner(stack.services.bulk, stack.services.applier, probe)


async def _zero() -> int:
    return 0


async def test_a_feed_is_pulled_applied_and_not_fetched_again_while_unchanged(
    stack: SupplierStack,
) -> None:
    metrics = MemoryMetrics()
    with supplier_server() as (url, feed):
        sid, _ = await stack.supplier(feed_url=url, pull_every_s=60)
        a, b = await stack.mapped(sid, stock=10, n=2)
        lines = [{"sku": f"S-{a}", "level": 3}, {"sku": f"S-{b}", "delta": 2}]
        feed.body = json.dumps(lines).encode()
        pulls, client = await puller(stack, metrics)
        async with client:
            assert await pulls.pull_due() == {sid: "changed"}
            assert await runner(stack).step()  # a small feed runs at once, whatever the load
            assert [await stack.shop.stock(s) for s in (a, b)] == [(3, 0, 0), (12, 0, 0)]
            assert await pulls.pull_due() == {}  # not due again for a minute
            supplier = await stack.services.repo.get_supplier(sid)
            assert supplier is not None
            assert await pulls.pull(supplier) == "not_modified"
    assert feed.requests[-1]["if-none-match"] == '"v1"'
    assert feed.requests[-1]["if-modified-since"] == feed.last_modified
    assert [await stack.shop.stock(s) for s in (a, b)] == [(3, 0, 0), (12, 0, 0)]  # once
    assert metrics.count(SUPPLIER_PULLS, supplier=sid, outcome="not_modified") == 1


async def test_a_hanging_then_failing_supplier_opens_its_breaker_and_is_skipped(
    stack: SupplierStack,
) -> None:
    metrics = MemoryMetrics()
    with supplier_server() as (url, feed):
        sid, _ = await stack.supplier(feed_url=url, pull_every_s=60)
        supplier = await stack.services.repo.get_supplier(sid)
        assert supplier is not None
        pulls, client = await puller(stack, metrics)
        async with client:
            feed.mode, feed.hang_s = "hang", 1.0
            assert await pulls.pull(supplier) == "failed"  # two attempts of 0.4 s each
            assert len(feed.requests) == 2
            feed.mode = "error"
            assert await pulls.pull(supplier) == "failed"  # 500, retried once: still down
            assert len(feed.requests) == 4
            assert metrics.gauges[(SUPPLIER_BREAKER_OPEN, (("supplier", sid),))] == 1.0
            assert await pulls.pull(supplier) == "skipped"  # open: the supplier is left alone
            assert len(feed.requests) == 4
    syncs = await stack.services.bulk.syncs.recent(sid, 10)
    assert syncs == []  # nothing queued from a feed that never came
    assert metrics.count(SUPPLIER_PULLS, supplier=sid, outcome="skipped") == 1


async def test_a_lying_feed_is_recorded_as_rejected_and_applies_nothing(
    stack: SupplierStack,
) -> None:
    with supplier_server() as (url, feed):
        sid, _ = await stack.supplier(feed_url=url, feed_format="csv", max_units=1000)
        (sku,) = await stack.mapped(sid, stock=10)
        feed.content_type = "text/csv"
        feed.body = f"sku,level\nS-{sku},-3\nS-{sku},5\nOTHER,5000000\nX,abc\n".encode()
        pulls, client = await puller(stack, MemoryMetrics())
        supplier = await stack.services.repo.get_supplier(sid)
        assert supplier is not None
        async with client:
            assert await pulls.pull(supplier) == "rejected"
    (sync,) = await stack.services.bulk.syncs.recent(sid, 10)
    assert sync.status == "rejected" and sync.report is not None
    problems = {e["line"]: e["message"] for e in sync.report["errors"]}
    assert "negative" in problems[2] and "again" in problems[3]
    assert "bound of 1000" in problems[4] and "whole number" in problems[5]
    assert await stack.shop.stock(sku) == (10, 0, 0)
    assert not await runner(stack).step()  # nothing to run


async def test_the_worker_pulls_a_due_feed_and_its_runner_applies_it(stack: SupplierStack) -> None:
    with supplier_server() as (url, feed):
        sid, _ = await stack.supplier(feed_url=url, feed_format="csv", pull_every_s=60)
        (sku,) = await stack.mapped(sid, stock=10)
        feed.content_type, feed.body = "text/csv", f"sku,level\nS-{sku},6\n".encode()
        pulls, client = await puller(stack, MemoryMetrics())
        worker = SupplierWorker(runner(stack), pulls, retention_s=3600, tick_s=0.05)
        done = asyncio.Event()
        async with client:
            task = asyncio.create_task(worker.run(done))
            try:
                async with asyncio.timeout(15):
                    while await stack.shop.stock(sku) != (6, 0, 0):
                        await asyncio.sleep(0.05)
            finally:
                done.set()
                await task
    assert worker.stats()["pulls"] == 1 and worker.stats()["sync_chunks"] == 1
    assert len(feed.requests) == 1  # not due again within the minute
