"""The Serve side's view of the inventory engine.

Routes each mutation to its shard, coalesces concurrent callers into one call per shard,
follows WrongShard redirects, and retries transient failures with the same request id (safe:
a shard answers a repeated id with its first answer). How a batch reaches a shard is injected
(``send``), so this is tested without Ray; ``actors/client.py`` plugs in actor handles.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from matchday.batching import Coalescer
from matchday.domain.errors import InvalidInput, MatchdayError, Unavailable, WrongShard
from matchday.inventory.commands import (
    AdjustLimits,
    Commit,
    Extend,
    Mutation,
    Outcome,
    Policy,
    Release,
    ReservationView,
    Reserve,
    Resize,
    Restock,
    SetOnHand,
    StockView,
    validate,
)
from matchday.inventory.routing import Router

log = logging.getLogger(__name__)

Send = Callable[[int, list[Mutation]], Awaitable[list[Outcome]]]

# Retries of a transient failure: 6 attempts with jittered backoff cover ~3 s, about what a
# shard actor takes to restart and recover 100k SKUs (README, performance).
RETRIES = 6
BACKOFF_S = 0.05
MAX_BACKOFF_S = 1.0
MAX_REDIRECTS = 3


class InventoryClient:
    def __init__(
        self,
        send: Send,
        router: Router,
        *,
        max_batch: int = 2048,
        in_flight: int = 2,
        retries: int = RETRIES,
        policy: Policy | None = None,
    ) -> None:
        self.router = router
        self.policy = policy or Policy()
        self.retries = retries
        self._send = send
        self._coalescers = {
            sid: Coalescer(self._sender(sid), max_batch=max_batch, max_in_flight=in_flight)
            for sid in router.all_shards
        }

    def _sender(self, shard_id: int) -> Callable[[list[Mutation]], Awaitable[list[Outcome]]]:
        async def flush(batch: list[Mutation]) -> list[Outcome]:
            try:
                return await self._send(shard_id, batch)
            except MatchdayError as exc:
                return [Outcome(error=exc)] * len(batch)
            except Exception as exc:  # the actor died or is restarting: nothing is known lost
                log.warning("shard %s call failed: %r", shard_id, exc)
                return [
                    Outcome(error=Unavailable(f"inventory shard {shard_id} unavailable"))
                ] * len(batch)

        return flush

    async def submit(self, m: Mutation) -> Outcome:
        try:
            validate(m, self.policy)  # bad input never costs an actor call
        except InvalidInput as exc:
            return Outcome(error=exc)
        redirects = 0
        attempt = 0
        while True:
            outcome = await self._coalescers[self.router.owner(m.sku)].submit(m)
            err = outcome.error
            if (
                isinstance(err, WrongShard)
                and redirects < MAX_REDIRECTS
                and err.owner in self._coalescers
            ):
                redirects += 1
                self.router.pins[m.sku] = err.owner
                continue
            if err is not None and err.retryable and attempt < self.retries:
                delay = min(MAX_BACKOFF_S, BACKOFF_S * 2**attempt)
                attempt += 1
                await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter only
                continue
            return outcome

    async def _value(self, m: Mutation) -> ReservationView | StockView:
        return (await self.submit(m)).unwrap()

    async def reserve(
        self, request_id: str, sku: str, qty: int, cart_id: str, customer_id: str, ttl_s: float
    ) -> ReservationView:
        value = await self._value(Reserve(request_id, sku, qty, cart_id, customer_id, ttl_s))
        assert isinstance(value, ReservationView)
        return value

    async def release(self, request_id: str, sku: str, reservation_id: str) -> ReservationView:
        value = await self._value(Release(request_id, sku, reservation_id))
        assert isinstance(value, ReservationView)
        return value

    async def commit(
        self, request_id: str, sku: str, reservation_id: str, order_id: str
    ) -> ReservationView:
        value = await self._value(Commit(request_id, sku, reservation_id, order_id))
        assert isinstance(value, ReservationView)
        return value

    async def extend(
        self, request_id: str, sku: str, reservation_id: str, ttl_s: float
    ) -> ReservationView:
        value = await self._value(Extend(request_id, sku, reservation_id, ttl_s))
        assert isinstance(value, ReservationView)
        return value

    async def resize(
        self, request_id: str, sku: str, reservation_id: str, qty: int
    ) -> ReservationView:
        value = await self._value(Resize(request_id, sku, reservation_id, qty))
        assert isinstance(value, ReservationView)
        return value

    async def restock(self, request_id: str, sku: str, qty: int) -> StockView:
        value = await self._value(Restock(request_id, sku, qty))
        assert isinstance(value, StockView)
        return value

    async def set_on_hand(self, request_id: str, sku: str, units: int) -> StockView:
        value = await self._value(SetOnHand(request_id, sku, units))
        assert isinstance(value, StockView)
        return value

    async def adjust_limits(
        self,
        request_id: str,
        sku: str,
        per_customer_limit: int | None = None,
        low_stock_threshold: int | None = None,
        low_stock_order_cap: int | None = None,
    ) -> StockView:
        value = await self._value(
            AdjustLimits(
                request_id, sku, per_customer_limit, low_stock_threshold, low_stock_order_cap
            )
        )
        assert isinstance(value, StockView)
        return value

    def stats(self) -> dict[int, tuple[int, int]]:
        """Per shard: (calls sent, mutations carried)."""
        return {sid: (c.batches, c.items) for sid, c in self._coalescers.items()}
