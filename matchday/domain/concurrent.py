"""Awaiting independent steps at once, with the errors a caller expects one at a time.

A request's steps that wait on different servers (PostgreSQL, a shard, the payment gateway)
cost the sum of their waits in sequence and the longest at once. ``asyncio.gather`` leaves
the others running when one fails, and a TaskGroup raises an ExceptionGroup, which no error
handler of the web layer maps to a 4xx or a 503: :func:`all_of` cancels the others and raises
the first error as itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar, overload

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")


@overload
async def all_of(a: Coroutine[Any, Any, A], b: Coroutine[Any, Any, B], /) -> tuple[A, B]: ...


@overload
async def all_of(
    a: Coroutine[Any, Any, A], b: Coroutine[Any, Any, B], c: Coroutine[Any, Any, C], /
) -> tuple[A, B, C]: ...


async def all_of(*steps: Coroutine[Any, Any, Any]) -> tuple[Any, ...]:
    """Each step's result, in order. If one fails, the others are cancelled (and awaited)
    and its error is raised: the first to fail, when more than one did."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(step) for step in steps]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return tuple(task.result() for task in tasks)
