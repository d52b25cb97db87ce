"""all_of: independent steps awaited at once; the first error raised as itself, the rest
cancelled (matchday/domain/concurrent.py)."""

from __future__ import annotations

import asyncio

import pytest

from matchday.domain.concurrent import all_of
from matchday.domain.errors import Conflict, Unavailable


async def test_the_steps_run_at_once_and_their_results_come_back_in_order() -> None:
    a_started, b_started = asyncio.Event(), asyncio.Event()

    async def a() -> str:
        a_started.set()
        await b_started.wait()  # one after the other, this would never return
        return "a"

    async def b() -> int:
        b_started.set()
        await a_started.wait()
        return 2

    async with asyncio.timeout(2):
        assert await all_of(a(), b()) == ("a", 2)


async def test_the_first_error_is_raised_as_itself_and_the_other_steps_are_cancelled() -> None:
    ended: list[str] = []

    async def refused() -> None:
        await asyncio.sleep(0)
        raise Conflict("the cart is already checked out")

    async def slow(name: str) -> None:
        try:
            await asyncio.sleep(60)
        finally:
            ended.append(name)

    async with asyncio.timeout(2):
        with pytest.raises(Conflict, match="already checked out") as raised:
            await all_of(slow("b"), refused(), slow("c"))
    assert type(raised.value) is Conflict  # not an ExceptionGroup: the web layer maps it
    assert sorted(ended) == ["b", "c"]  # cancelled and awaited before all_of returned


async def test_when_two_steps_fail_the_first_to_fail_is_raised() -> None:
    async def down(after: int, exc: Exception) -> None:
        for _ in range(after):
            await asyncio.sleep(0)
        raise exc

    with pytest.raises(Unavailable, match="first"):
        await all_of(down(3, Unavailable("later")), down(1, Unavailable("first")))
