"""Background loops: ones that end when asked, even where a driver swallowed the request,
and ones started again when they fail (``supervise``: the payments and supplier workers).

redis-py's asyncio client can swallow a cancellation that lands while a blocking read
(XREAD/XREADGROUP BLOCK) is timing out: the call returns normally and the task carries on
(redis/redis-py#2028; reproduced here with redis 8.1 on Python 3.11.7: 2 of 60 cancels of a
live-results loop were lost). The task still counts the request (``Task.cancelling()``), so a
loop that checks after each such call ends as it was asked to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


def raise_if_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop and something swallowed it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def supervise(
    body: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    *,
    first_s: float = 0.5,
    max_s: float = 30.0,
    what: str = "worker",
) -> int:
    """Run ``body`` until it returns or ``stop`` is set, starting it again (with capped
    exponential backoff) whenever it raises. Returns how many times it failed.

    A worker whose setup fails once (PostgreSQL restarting, Serve not deployed yet) would
    otherwise sit idle for good inside a live actor, and unsettled orders would wait forever.
    """
    failures = 0
    delay = first_s
    while not stop.is_set():
        try:
            await body()
            return failures
        except Exception:
            failures += 1
            log.exception("%s failed; starting it again in %.1f s", what, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(max_s, delay * 2)
    return failures
