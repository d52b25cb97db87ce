"""Background work started by a test ends with its test.

A task a test (or one of its function-scoped fixtures) started and left running outlives it
on the session's event loop: a live-results loop of one test once logged a warning into
another test's log assertion (issue 13, item 12). After each test, tasks created during it
get a moment to finish (a cancelled task needs a turn of the loop); whatever is still
running is cancelled, awaited and reported as that test's error.
"""

from __future__ import annotations

import asyncio
import contextlib

# Long enough for a cancelled task to unwind through a Redis or PostgreSQL call, short
# enough not to matter: the wait only happens when something is still running.
GRACE_S = 2.0
CANCEL_WAIT_S = 5.0


def running_tasks() -> set[asyncio.Task[object]]:
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not current and not t.done()}


def describe(task: asyncio.Task[object]) -> str:
    coro = task.get_coro()
    where = getattr(coro, "__qualname__", None) or repr(coro)
    return f"{task.get_name()} ({where})"


async def end_leftovers(before: set[asyncio.Task[object]]) -> list[str]:
    """Tasks started since ``before`` that are still running: ended, and named."""
    left = running_tasks() - before
    if left:
        _, left = await asyncio.wait(left, timeout=GRACE_S)
    if not left:
        return []
    names = sorted(describe(t) for t in left)
    for task in left:
        task.cancel()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CANCEL_WAIT_S):
            await asyncio.gather(*left, return_exceptions=True)
    return names


async def stop(task: asyncio.Task[object]) -> None:
    """Cancel a task a test or fixture started, and wait until it has really ended."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        async with asyncio.timeout(CANCEL_WAIT_S):
            await task
