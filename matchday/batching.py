"""Coalescing concurrent callers into batches: the engine's core performance idea.

While a flush is in flight, new items queue; when it finishes, everything queued goes out in
the next flush. Under light load a batch is one item (no added latency, no timer); under a
surge batches grow by themselves, and the per-call cost (an actor hop, a commit's fsync) is
paid once per batch instead of once per item. Used on both sides: the client coalesces
callers into one actor call per shard, the shard coalesces actor calls into one transaction.

With ``max_in_flight`` above one, a second flush would leave as soon as one item queues
behind the first, so under load batches stay small. ``linger_s`` lets such a flush (only
one that would start while another is in flight: never at light load) wait up to that long
for ``fill`` items before it goes out.

When a flush returns, the next one waits one turn of the event loop: the callers it just
answered run first, and those that submit again at once (a closed loop, a handler adding
its next line) join the flush that leaves now instead of queueing behind it. Without that
turn, a flush left the moment the previous one returned, carrying only the callers that
queued while it was out, and the callers split into as many groups as flushes in flight,
for good: at 64 callers on one hot SKU, two calls of 32 and two PostgreSQL transactions of
32 where one of 64 does the same work (issue 12).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 1024,
        max_in_flight: int = 1,
        linger_s: float = 0.0,
        fill: int = 1,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1 or fill < 1 or linger_s < 0:
            raise ValueError("max_batch, max_in_flight and fill must be positive")
        self._flush = flush
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._linger_s = linger_s
        self._fill = min(fill, max_batch)
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._ripe = False  # the linger ran out: the next flush goes out as it is
        self._turn = False  # a flush just returned: the next waits for one loop turn
        self.batches = 0
        self.items = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def submit(self, item: T) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        self._kick()
        return await fut

    async def submit_many(self, items: Sequence[T]) -> list[R]:
        loop = asyncio.get_running_loop()
        futs: list[asyncio.Future[R]] = []
        for item in items:
            fut: asyncio.Future[R] = loop.create_future()
            self._pending.append((item, fut))
            futs.append(fut)
        self._kick()
        return list(await asyncio.gather(*futs))

    def _kick(self) -> None:
        if self._turn:
            return
        while self._pending and self._in_flight < self._max_in_flight:
            if self._lingers():
                return
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _lingers(self) -> bool:
        """Whether the next flush waits to fill up: only behind another flush in flight."""
        if self._in_flight == 0 or self._ripe or len(self._pending) >= self._fill:
            self._ripe = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return False
        if self._linger_s == 0:
            return False
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger_s, self._ripen)
        return True

    def _ripen(self) -> None:
        self._timer = None
        self._ripe = True
        self._kick()

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"flush answered {len(results)} results for {len(batch)} items")
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
            self.batches += 1
            self.items += len(batch)
        except BaseException as exc:  # every waiter must hear about the failure
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._in_flight -= 1
            # The answered callers' tasks were scheduled by set_result, before this turn.
            self._turn = True
            asyncio.get_running_loop().call_soon(self._after_turn)

    def _after_turn(self) -> None:
        self._turn = False
        self._kick()
