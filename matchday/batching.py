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

A caller that submits many items at once (a shard taking a client's batch) waits on one
future for all of them, not one per item: a future, its ``gather`` callback and its wake-up
per mutation cost the shard ~2 us per reserve.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

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
        # Queued submits: (item, its future, False) for one item, (items, one future for
        # all their results, True) for a group.
        self._pending: list[tuple[Any, asyncio.Future[Any], bool]] = []
        self._queued = 0  # items in _pending
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._ripe = False  # the linger ran out: the next flush goes out as it is
        self._turn = False  # a flush just returned: the next waits for one loop turn
        self.batches = 0
        self.items = 0

    @property
    def pending(self) -> int:
        return self._queued

    async def submit(self, item: T) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut, False))
        self._queued += 1
        self._kick()
        return await fut

    async def submit_many(self, items: Sequence[T]) -> list[R]:
        """Each item's result, in order. A group larger than ``max_batch`` is queued as
        several, each a flush's worth."""
        step = self._max_batch
        if not items:
            return []
        if len(items) <= step:
            return list(await self._enqueue(items))
        parts = [self._enqueue(items[i : i + step]) for i in range(0, len(items), step)]
        return [r for part in await asyncio.gather(*parts) for r in part]

    def _enqueue(self, items: Sequence[T]) -> asyncio.Future[Sequence[R]]:
        fut: asyncio.Future[Sequence[R]] = asyncio.get_running_loop().create_future()
        self._pending.append((items, fut, True))
        self._queued += len(items)
        self._kick()
        return fut

    def _kick(self) -> None:
        if self._turn:
            return
        while self._pending and self._in_flight < self._max_in_flight:
            if self._lingers():
                return
            if self._queued <= self._max_batch:  # the common case: all of it
                groups, n = self._pending, self._queued
                self._pending = []
            else:  # whole groups, up to max_batch items (submit_many makes none larger)
                n = k = 0
                for payload, _, many in self._pending:
                    size = len(payload) if many else 1
                    if n + size > self._max_batch and k:
                        break
                    n += size
                    k += 1
                groups = self._pending[:k]
                del self._pending[:k]
            self._queued -= n
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._run(groups, n))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _lingers(self) -> bool:
        """Whether the next flush waits to fill up: only behind another flush in flight."""
        if self._in_flight == 0 or self._ripe or self._queued >= self._fill:
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

    async def _run(self, groups: list[tuple[Any, asyncio.Future[Any], bool]], n: int) -> None:
        batch: list[T] = []
        for payload, _, many in groups:
            if many:
                batch.extend(payload)
            else:
                batch.append(payload)
        try:
            results = await self._flush(batch)
            if len(results) != n:
                raise RuntimeError(f"flush answered {len(results)} results for {n} items")
            at = 0
            for payload, fut, many in groups:
                k = len(payload) if many else 1
                if not fut.done():
                    fut.set_result(results[at : at + k] if many else results[at])
                at += k
            self.batches += 1
            self.items += n
        except BaseException as exc:  # every waiter must hear about the failure
            for _, fut, _ in groups:
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
