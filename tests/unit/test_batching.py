"""Coalescer: concurrent callers share flushes; failures and cancellations stay contained."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from matchday.batching import Coalescer

# A coalescer bug shows up as a waiter that never wakes: fail fast instead of hanging.
pytestmark = pytest.mark.timeout(10)


class Boom(Exception):
    pass


class GatedFlush:
    """A flush that records its batches and waits for the test to open a gate per flush."""

    def __init__(self, fail_on: set[str] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.gates: list[asyncio.Event] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_on = fail_on or set()

    async def __call__(self, items: list[str]) -> Sequence[str]:
        self.batches.append(list(items))
        gate = asyncio.Event()
        self.gates.append(gate)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await gate.wait()
        finally:
            self.in_flight -= 1
        if self.fail_on & set(items):
            raise Boom(f"flush of {items} failed")
        return [f"done:{i}" for i in items]

    async def open(self, index: int) -> None:
        await wait_for(lambda: len(self.gates) > index)
        self.gates[index].set()

    async def open_until_done(self, *awaitables: asyncio.Future[object]) -> None:
        """Open every gate, including those of flushes started meanwhile, until all are done."""
        for _ in range(10_000):
            if all(a.done() for a in awaitables):
                return
            for g in self.gates:
                g.set()
            await asyncio.sleep(0)
        raise AssertionError("the waiters never finished")


async def wait_for(condition, ticks: int = 1000) -> None:
    for _ in range(ticks):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


def spawn(c: Coalescer[str, str], items: list[str]) -> list[asyncio.Task[str]]:
    return [asyncio.ensure_future(c.submit(i)) for i in items]


async def test_a_lone_submit_is_flushed_at_once_as_a_batch_of_one() -> None:
    async def flush(items: list[int]) -> list[int]:
        return [i * 10 for i in items]

    c: Coalescer[int, int] = Coalescer(flush)

    assert await c.submit(4) == 40
    assert (c.batches, c.items, c.pending) == (1, 1, 0)


async def test_submits_arriving_while_a_flush_is_in_flight_share_the_next_flush() -> None:
    flush = GatedFlush()
    c: Coalescer[str, str] = Coalescer(flush)
    first = spawn(c, ["a"])
    await wait_for(lambda: flush.batches == [["a"]])

    rest = spawn(c, [f"x{i}" for i in range(50)])
    await wait_for(lambda: c.pending == 50)
    assert len(flush.batches) == 1, "nothing else goes out while one flush is in flight"

    await flush.open(0)
    await flush.open(1)
    results = await asyncio.gather(*first, *rest)

    assert flush.batches == [["a"], [f"x{i}" for i in range(50)]]
    assert results == ["done:a", *[f"done:x{i}" for i in range(50)]]
    assert (c.batches, c.items) == (2, 51)


async def test_each_waiter_gets_the_result_for_its_own_item_in_order() -> None:
    async def flush(items: list[int]) -> list[str]:
        await asyncio.sleep(0)
        return [f"r{i}" for i in items]

    c: Coalescer[int, str] = Coalescer(flush)

    results = await asyncio.gather(*(c.submit(i) for i in range(200)))

    assert results == [f"r{i}" for i in range(200)]
    assert c.batches < 10, "200 concurrent submits coalesce into a handful of flushes"
    assert c.items == 200


async def test_no_batch_is_larger_than_max_batch() -> None:
    flush = GatedFlush()
    c: Coalescer[str, str] = Coalescer(flush, max_batch=10)
    items = [f"i{n}" for n in range(25)]

    task = asyncio.ensure_future(c.submit_many(items))
    await wait_for(lambda: len(flush.batches) == 1)
    assert c.pending == 15
    await flush.open_until_done(task)
    results = task.result()

    assert [len(b) for b in flush.batches] == [10, 10, 5]
    assert [i for b in flush.batches for i in b] == items
    assert results == [f"done:{i}" for i in items]


async def test_groups_share_a_flush_whole_and_each_waits_on_one_future() -> None:
    flush = GatedFlush()
    c: Coalescer[str, str] = Coalescer(flush, max_batch=10)
    first = asyncio.ensure_future(c.submit("a"))
    await wait_for(lambda: flush.batches == [["a"]])
    # Behind the flush in flight: groups of 4, 5 and 3. The first two fit one flush of 9;
    # the third would make 12, so it waits whole for the next rather than being split.
    groups = [[f"{g}{i}" for i in range(n)] for g, n in (("p", 4), ("q", 5), ("r", 3))]
    loop = asyncio.get_running_loop()
    real, made = loop.create_future, []

    def counted() -> asyncio.Future[Any]:
        made.append(real())
        return made[-1]

    loop.create_future = counted  # type: ignore[method-assign]
    try:
        tasks = [asyncio.ensure_future(c.submit_many(g)) for g in groups]
        lone = asyncio.ensure_future(c.submit("z"))
        await wait_for(lambda: c.pending == 13)
    finally:
        loop.create_future = real  # type: ignore[method-assign]
    assert len(made) == 4, "one future per submit, not one per item"
    await flush.open_until_done(first, *tasks, lone)

    assert flush.batches == [["a"], groups[0] + groups[1], groups[2] + ["z"]]
    assert [t.result() for t in tasks] == [[f"done:{x}" for x in g] for g in groups]
    assert lone.result() == "done:z"
    assert (c.batches, c.items, c.pending) == (3, 14, 0)


async def test_at_most_max_in_flight_flushes_run_at_once() -> None:
    flush = GatedFlush()
    c: Coalescer[str, str] = Coalescer(flush, max_batch=2, max_in_flight=3)

    items = [f"i{n}" for n in range(20)]
    task = asyncio.ensure_future(c.submit_many(items))
    await wait_for(lambda: len(flush.batches) == 3)
    for _ in range(20):
        await asyncio.sleep(0)

    assert flush.in_flight == 3
    assert len(flush.batches) == 3
    assert c.pending == 14
    await flush.open_until_done(task)
    assert task.result() == [f"done:{i}" for i in items]
    assert flush.max_in_flight == 3
    assert [len(b) for b in flush.batches] == [2] * 10


async def test_a_failed_flush_fails_every_waiter_of_that_batch_and_no_other() -> None:
    flush = GatedFlush(fail_on={"b"})
    c: Coalescer[str, str] = Coalescer(flush)
    first = spawn(c, ["a"])
    await wait_for(lambda: len(flush.batches) == 1)
    doomed = spawn(c, ["b", "c"])
    await wait_for(lambda: c.pending == 2)
    await flush.open(0)
    await wait_for(lambda: len(flush.batches) == 2)
    later = spawn(c, ["d", "e"])
    await wait_for(lambda: c.pending == 2)

    await flush.open(1)
    await flush.open(2)
    outcomes = await asyncio.gather(*first, *doomed, *later, return_exceptions=True)

    assert flush.batches == [["a"], ["b", "c"], ["d", "e"]]
    assert outcomes[0] == "done:a"
    assert isinstance(outcomes[1], Boom)
    assert outcomes[2] is outcomes[1], "both waiters of the batch hear the same failure"
    assert outcomes[3:] == ["done:d", "done:e"]
    assert (c.batches, c.items) == (2, 3), "a failed batch is not counted as flushed"


async def test_a_flush_answering_the_wrong_number_of_results_fails_its_whole_batch() -> None:
    async def flush(items: list[str]) -> list[str]:
        return items[:-1]

    c: Coalescer[str, str] = Coalescer(flush)

    with pytest.raises(RuntimeError, match="1 results for 2 items"):
        await c.submit_many(["a", "b"])
    assert await c.submit_many([]) == []


async def test_the_coalescer_keeps_working_after_a_failed_flush() -> None:
    calls = 0

    async def flush(items: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Boom("first flush fails")
        return [i.upper() for i in items]

    c: Coalescer[str, str] = Coalescer(flush)

    with pytest.raises(Boom):
        await c.submit("a")
    assert await c.submit("b") == "B"


async def test_a_cancelled_waiter_in_a_queued_batch_does_not_break_the_others() -> None:
    flush = GatedFlush()
    c: Coalescer[str, str] = Coalescer(flush)
    first = spawn(c, ["a"])
    await wait_for(lambda: len(flush.batches) == 1)
    b, gone, d = spawn(c, ["b", "gone", "d"])
    await wait_for(lambda: c.pending == 3)

    gone.cancel()
    await asyncio.sleep(0)
    await flush.open(0)
    await flush.open(1)

    assert await first[0] == "done:a"
    assert await b == "done:b"
    assert await d == "done:d"
    assert gone.cancelled()
    assert flush.batches == [["a"], ["b", "gone", "d"]]
    assert (c.batches, c.items, c.pending) == (2, 4, 0)


async def test_a_cancelled_waiter_in_a_flush_already_in_flight_does_not_break_the_others() -> None:
    flush = GatedFlush()
    c: Coalescer[str, str] = Coalescer(flush)
    first = spawn(c, ["a"])
    await wait_for(lambda: len(flush.batches) == 1)
    b, gone, d = spawn(c, ["b", "gone", "d"])
    await flush.open(0)
    await wait_for(lambda: len(flush.batches) == 2)

    gone.cancel()
    await asyncio.sleep(0)
    await flush.open(1)

    assert await asyncio.gather(first[0], b, d) == ["done:a", "done:b", "done:d"]
    assert gone.cancelled()
    follow_up = asyncio.ensure_future(c.submit("e"))
    await flush.open(2)
    assert await follow_up == "done:e"
    assert c.pending == 0


async def test_a_cancelled_waiter_in_a_failing_batch_does_not_hide_the_failure_from_others() -> (
    None
):
    flush = GatedFlush(fail_on={"b"})
    c: Coalescer[str, str] = Coalescer(flush)
    first = spawn(c, ["a"])
    await wait_for(lambda: len(flush.batches) == 1)
    b, gone = spawn(c, ["b", "gone"])
    await flush.open(0)
    await wait_for(lambda: len(flush.batches) == 2)

    gone.cancel()
    await asyncio.sleep(0)
    await flush.open(1)

    assert await first[0] == "done:a"
    with pytest.raises(Boom):
        await b
    assert gone.cancelled()


@pytest.mark.parametrize(("max_batch", "max_in_flight"), [(0, 1), (1, 0), (-1, -1)])
def test_a_coalescer_needs_a_positive_batch_size_and_flight_count(
    max_batch: int, max_in_flight: int
) -> None:
    async def flush(items: list[int]) -> list[int]:
        return items

    with pytest.raises(ValueError, match="must be positive"):
        Coalescer(flush, max_batch=max_batch, max_in_flight=max_in_flight)


# -- linger: larger batches under load, none of it at light load -------------------------


async def test_with_a_linger_a_lone_submit_still_goes_out_at_once() -> None:
    flush = GatedFlush()
    c: Coalescer[str, str] = Coalescer(flush, max_in_flight=2, linger_s=60.0, fill=10)
    first = spawn(c, ["a"])
    await wait_for(lambda: flush.batches == [["a"]])  # nothing in flight: no wait at all
    await flush.open(0)
    assert await first[0] == "done:a"


async def test_behind_a_flush_in_flight_the_next_one_waits_until_it_fills() -> None:
    flush = GatedFlush()
    c: Coalescer[str, str] = Coalescer(flush, max_in_flight=2, linger_s=60.0, fill=3)
    first = spawn(c, ["a"])
    await wait_for(lambda: len(flush.batches) == 1)

    second = spawn(c, ["b", "c"])
    await wait_for(lambda: c.pending == 2)
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(flush.batches) == 1, "two items do not fill the second flush yet"
    third = spawn(c, ["d"])
    await wait_for(lambda: len(flush.batches) == 2)  # the third fills it: out at once

    await flush.open_until_done(*first, *second, *third)
    assert flush.batches == [["a"], ["b", "c", "d"]]


async def test_a_lingering_flush_goes_out_when_the_linger_runs_out() -> None:
    flush = GatedFlush()
    c: Coalescer[str, str] = Coalescer(flush, max_in_flight=2, linger_s=0.01, fill=100)
    first = spawn(c, ["a"])
    await wait_for(lambda: len(flush.batches) == 1)
    second = spawn(c, ["b"])

    await asyncio.wait_for(_until(lambda: len(flush.batches) == 2), 2.0)
    assert flush.batches == [["a"], ["b"]]
    await flush.open_until_done(*first, *second)


async def test_a_lingering_flush_goes_out_at_once_when_the_one_in_flight_returns() -> None:
    flush = GatedFlush()
    c: Coalescer[str, str] = Coalescer(flush, max_in_flight=2, linger_s=60.0, fill=100)
    first = spawn(c, ["a"])
    await wait_for(lambda: len(flush.batches) == 1)
    second = spawn(c, ["b", "c"])
    await wait_for(lambda: c.pending == 2)

    await flush.open(0)  # the flush in flight returns: nothing to wait behind any more
    await wait_for(lambda: len(flush.batches) == 2)
    assert flush.batches[1] == ["b", "c"]
    await flush.open_until_done(*first, *second)


async def _until(condition) -> None:  # type: ignore[no-untyped-def]
    while not condition():
        await asyncio.sleep(0.001)


@pytest.mark.parametrize(("fill", "linger_s"), [(0, 0.001), (5, -1.0)])
def test_a_linger_needs_a_positive_fill_and_no_negative_time(fill: int, linger_s: float) -> None:
    async def flush(items: list[int]) -> list[int]:
        return items

    with pytest.raises(ValueError, match="must be positive"):
        Coalescer(flush, fill=fill, linger_s=linger_s)


async def _closed_loop(callers: int, rounds: int, **options: Any) -> list[int]:
    """``callers`` each submitting again as soon as answered; the sizes of the flushes."""
    sizes: list[int] = []

    async def flush(items: list[int]) -> list[int]:
        sizes.append(len(items))
        await asyncio.sleep(0.001)  # the round trip
        return items

    c: Coalescer[int, int] = Coalescer(flush, **options)

    async def caller(n: int) -> None:
        for _ in range(rounds):
            await c.submit(n)

    await asyncio.gather(*(caller(n) for n in range(callers)))
    return sizes


# One flush at a time (the shard's committer), and two with a linger (the client's default).
@pytest.mark.parametrize(
    "options", [{}, {"max_in_flight": 2, "linger_s": 0.05, "fill": 1000}], ids=["one", "two"]
)
async def test_callers_answered_by_a_flush_join_the_next_one_instead_of_splitting(
    options: dict[str, Any],
) -> None:
    # The first caller's flush leaves alone and the others queue behind it. Had the next
    # flush left the moment the first returned, the first caller would have missed it, and
    # the callers would have gone on in two groups (1 and 7) for good.
    sizes = await _closed_loop(8, 20, **options)
    assert sizes[0] == 1
    assert sizes[1:-1] == [8] * 19  # the last one lacks the caller that started a round early
    assert sum(sizes) == 8 * 20
