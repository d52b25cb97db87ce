"""A poll's live-results loop lives exactly as long as someone watches it.

The Redis side is a stand-in that behaves like redis-py at its worst: a cancellation that
lands in a blocking read is swallowed and the read returns normally (redis/redis-py#2028,
reproduced with redis 8.1). tests/integration/test_polls_live.py drives the real thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

from matchday.domain.errors import Unavailable
from matchday.polls.live import LiveHub
from matchday.tasks import raise_if_cancelled
from tests.logs import messages_of

# Each loop is at most one wait from noticing (BLOCK_MS here), so this bound is generous.
ENDS_WITHIN_S = 2.0


class SwallowingTally:
    """Blocks like XREAD BLOCK; swallows every cancellation that reaches it, or fails."""

    def __init__(self, *, failing: bool = False) -> None:
        self.failing = failing
        self.waits = 0

    async def last_change(self, poll_id: str) -> str:
        return "0-0"

    async def wait_change(self, poll_id: str, after: str, block_ms: int) -> str | None:
        self.waits += 1
        if self.failing:
            raise Unavailable("polls store unavailable: TimeoutError")
        # What redis-py sometimes does: the read "returns" and the task goes on.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(block_ms / 1000)
        return None


def hub_over(tally: Any) -> LiveHub:
    return LiveHub(tally, coalesce_s=0.01)


async def ended(task: asyncio.Task[None]) -> bool:
    """Whether ``task`` ends (returns, or stops as cancelled) within ENDS_WITHIN_S."""
    done, _ = await asyncio.wait({task}, timeout=ENDS_WITHIN_S)
    return task in done


async def test_the_loop_ends_when_its_last_watcher_leaves_though_the_cancel_was_swallowed() -> None:
    tally = SwallowingTally()
    hub = hub_over(tally)
    async with hub.watching("p_one") as first:
        async with hub.watching("p_one") as second:
            assert first is second and len(hub.loops()) == 1
            loop = hub.loops()[0]
        await asyncio.sleep(0.05)
        assert not loop.done()  # one watcher left: still followed
    assert await ended(loop)
    assert hub.loops() == [] and tally.waits >= 1


async def test_a_new_watcher_after_the_last_one_left_gets_a_fresh_loop() -> None:
    hub = hub_over(SwallowingTally())
    async with hub.watching("p_two"):
        old = hub.loops()[0]
    async with hub.watching("p_two"):
        new = hub.loops()[0]
        assert new is not old
        assert await ended(old)
        assert not new.done()
    assert await ended(new)


async def test_a_loop_without_watchers_stops_quietly_during_an_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = hub_over(SwallowingTally(failing=True))
    with caplog.at_level(logging.WARNING, logger="matchday.polls.live"):
        async with hub.watching("p_three"):
            loop = hub.loops()[0]
            while not messages_of(caplog, "matchday.polls.live"):
                await asyncio.sleep(0.01)
            said = messages_of(caplog, "matchday.polls.live")
        assert await ended(loop)
    # While watched, the outage was reported; after the watcher left, nothing more.
    assert said[0] == "live results of p_three: polls store unavailable: TimeoutError"
    assert messages_of(caplog, "matchday.polls.live") == said


async def test_aclose_ends_every_loop_still_watched() -> None:
    hub = hub_over(SwallowingTally())
    async with hub.watching("p_four"), hub.watching("p_five"):
        loops = hub.loops()
        assert len(loops) == 2
        await hub.aclose()
        assert all(t.done() for t in loops) and hub.loops() == []


async def test_a_swallowed_cancellation_is_raised_again() -> None:
    async def loop() -> None:
        while True:
            with contextlib.suppress(asyncio.CancelledError):  # swallowed
                await asyncio.sleep(10)
            raise_if_cancelled()

    task = asyncio.get_running_loop().create_task(loop())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, ENDS_WITHIN_S)
    raise_if_cancelled()  # this task was never asked to stop: nothing happens


class Stream:
    """A changes stream whose newest id the test moves; a vote is a new id."""

    def __init__(self) -> None:
        self.newest = 0
        self.read_newest = asyncio.Event()

    async def last_change(self, poll_id: str) -> str:
        await asyncio.sleep(0.05)  # a Redis round trip the watcher's snapshot could overtake
        self.read_newest.set()
        return f"{self.newest}-0"

    async def wait_change(self, poll_id: str, after: str, block_ms: int) -> str | None:
        deadline = asyncio.get_running_loop().time() + block_ms / 1000
        while asyncio.get_running_loop().time() < deadline:
            if self.newest > int(after.split("-")[0]):
                return f"{self.newest}-0"
            await asyncio.sleep(0.01)
        return None


async def test_a_new_watcher_starts_after_the_loop_knows_where_the_stream_stands() -> None:
    """Its first snapshot is read after the loop's starting point: a vote after that
    point wakes it, one before it is in the snapshot. Never in neither."""
    stream = Stream()
    hub = hub_over(stream)
    async with hub.watching("p_one") as watch:
        assert stream.read_newest.is_set()  # not handed over before the loop's first read
        seen = watch.version
        stream.newest += 1  # a vote after the watcher's snapshot
        assert await LiveHub.wait(watch, seen, 2.0) != seen
    await hub.aclose()
