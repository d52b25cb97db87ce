"""Redis commands of concurrent requests, sent together: one pipeline per event-loop turn.

A command through redis-py costs a replica ~100-150 us of CPU (measured 2026-12-02 on the
shop replica's client, contended 2-core machine): a pooled connection, a timeout timer, the
send and the parsed reply, whatever the command. Adds carrying an Idempotency-Key make two
each (claim and answer). Under load many requests reach that point in the same turn of the
event loop; :class:`RedisBatch` queues their commands and sends them as one pipeline on the
next turn (a lone command goes as it is), so the cost is paid per batch, as the inventory
engine's client does for shard calls.

Semantics per command are unchanged: each caller gets its own reply or its own error (a
reply error stays that command's); a connection or timeout error fails the whole batch, and
every caller handles it as before (the idempotency store then relies on engine ids).
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

MAX_BATCH = 256  # commands per pipeline; the rest wait for the next turn


class RedisBatch:
    def __init__(self, redis: Redis, max_batch: int = MAX_BATCH) -> None:
        self.redis = redis
        self.max_batch = max_batch
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self.batches = 0  # pipelines and lone commands sent (tests and benchmarks read it)

    async def execute(self, *args: Any) -> Any:
        """``redis.execute_command(*args)``, sent with the other commands of this turn."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, future))
        if len(self._queue) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        if self._queue:
            asyncio.get_running_loop().call_soon(self._flush)
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)  # a reference until done: the loop keeps only weak ones
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        self.batches += 1
        try:
            if len(batch) == 1:
                [(args, _)] = batch
                one = await self.redis.execute_command(*args)  # type: ignore[no-untyped-call]
                replies: list[Any] = [one]
            else:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for args, _ in batch:
                        pipe.execute_command(*args)
                    replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the whole batch failed: every caller sees why
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
