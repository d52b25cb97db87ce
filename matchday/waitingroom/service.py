"""The waiting room's two sides: fans (challenge, join, status, pass) and operators (drops).

No timer anywhere: every status call first advances the queue in the store, in the same
atomic step that locates the fan, so every replica sees one queue and admission happens as
long as someone is watching (ADR 0026).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from matchday.domain.clock import Clock
from matchday.domain.errors import Conflict, NotFound
from matchday.metrics import NOOP, WR_ADMITTED, WR_QUEUE, WR_TICKETS, WR_WAIT, Metrics
from matchday.waitingroom import bots
from matchday.waitingroom.errors import BotSuspected, NotAdmitted, TokenExpired
from matchday.waitingroom.models import (
    ADMITTED,
    CLOSED,
    OPEN,
    PAUSED,
    SCHEDULED,
    SOLD_OUT,
    WAITING,
    Drop,
    DropIn,
    Located,
    Rate,
    Status,
    drop_id_for,
)
from matchday.waitingroom.ports import DropStore, QueueStore, StockLevels
from matchday.waitingroom.rates import RateSource
from matchday.waitingroom.tokens import CHALLENGE_TTL_S, Tokens

EXPIRED = "expired"  # admitted, but the pass's lifetime went by unclaimed
# A drop's definition is read from PostgreSQL at most this often per process: a pause or a
# rate change reaches every replica within it.
DROP_CACHE_S = 1.0
# Stock levels per drop, per process: one PostgreSQL read per drop per this, whatever the
# number of fans polling.
STOCK_CACHE_S = 0.5


class WaitingRoom:
    """The fans' side."""

    def __init__(
        self,
        drops: DropStore,
        queue: QueueStore,
        stock: StockLevels,
        tokens: Tokens,
        clock: Clock,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        metrics: Metrics = NOOP,
    ) -> None:
        self.drops = drops
        self.queue = queue
        self.stock = stock
        self.tokens = tokens
        self.clock = clock
        self.monotonic = monotonic
        self.metrics = metrics
        self._drops: dict[str, tuple[float, Drop]] = {}
        self._levels: dict[str, tuple[float, tuple[int, int]]] = {}

    async def drop(self, drop_id: str) -> Drop:
        now = self.monotonic()
        cached = self._drops.get(drop_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self.drops.get(drop_id)
        if found is None:
            raise NotFound("drop", drop_id)
        self._drops[drop_id] = (now + DROP_CACHE_S, found)
        return found

    async def levels(self, drop: Drop) -> tuple[int, int]:
        now = self.monotonic()
        cached = self._levels.get(drop.drop_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        levels = await self.stock.levels(drop.skus)
        self._levels[drop.drop_id] = (now + STOCK_CACHE_S, levels)
        return levels

    async def challenge(self, drop_id: str, customer: str) -> dict[str, Any]:
        drop = await self._joinable(drop_id)
        now = self.clock.now()
        return {
            "challenge": self.tokens.challenge(drop.drop_id, customer, drop.pow_bits, now),
            "bits": drop.pow_bits,
            "expires_in_s": CHALLENGE_TTL_S,
        }

    async def join(
        self,
        drop_id: str,
        customer: str,
        address: str,
        challenge: str | None = None,
        nonce: str | None = None,
    ) -> Status:
        """The shopper's ticket (the one it holds, or a new one at the back of its class)."""
        drop = await self._joinable(drop_id)
        now = self.clock.now()
        place = await self.queue.ticket_of(drop_id, customer)
        if place is None:
            place = await self._new_ticket(drop, customer, address, challenge, nonce, now)
        status = await self._status(drop, customer, place)
        ticket = self.tokens.ticket(drop_id, customer, place, now)
        return dataclasses.replace(status, ticket=ticket)

    async def _new_ticket(
        self,
        drop: Drop,
        customer: str,
        address: str,
        challenge: str | None,
        nonce: str | None,
        now: float,
    ) -> int:
        worked = drop.pow_bits == 0
        if challenge is not None or nonce is not None:  # a wrong answer is an error, not a bot
            self.tokens.check_work(
                challenge or "", nonce or "", drop.drop_id, customer, drop.pow_bits, now
            )
            worked = True
        here = await self.queue.count_address(drop.drop_id, address, customer)
        verdict = bots.judge(worked=worked, identities_here=here, address_limit=drop.address_limit)
        self.metrics.inc(WR_TICKETS, tags={"verdict": verdict.kind})
        if verdict.kind == bots.REFUSED:
            await self.queue.bump(drop.drop_id, "refused")
            raise BotSuspected("; ".join(verdict.reasons))
        if verdict.kind == bots.BEHIND:
            await self.queue.bump(drop.drop_id, "behind")
        return await self.queue.file(drop.drop_id, customer, verdict.place(now))

    async def status(self, drop_id: str, ticket: str | None, customer: str | None = None) -> Status:
        """Where the ticket's holder stands (``customer``: the caller must be that holder)."""
        drop = await self.drop(drop_id)
        now = self.clock.now()
        if customer is None:
            held = self.tokens.read_ticket(ticket, drop_id, now)
        else:
            held = self.tokens.check_ticket(ticket, drop_id, customer, now)
        return await self._status(drop, held.customer, held.place)

    async def claim(self, drop_id: str, ticket: str | None, customer: str) -> dict[str, Any]:
        """A pass for an admitted fan, valid until its admission plus the drop's pass TTL."""
        drop = await self.drop(drop_id)
        held = self.tokens.check_ticket(ticket, drop_id, customer, self.clock.now())
        status = await self._status(drop, customer, held.place)
        if status.state == EXPIRED:
            raise TokenExpired("pass")
        if status.state != ADMITTED or status.pass_expires_at is None:
            raise NotAdmitted(status.state, status.position)
        expires = status.pass_expires_at
        return {
            "pass": self.tokens.pass_(drop_id, customer, expires),
            "expires_at": int(expires),
            "skus": list(drop.skus),
        }

    async def spent(self, drop_id: str, customer: str) -> None:
        await self.queue.spent(drop_id, customer)

    async def _joinable(self, drop_id: str) -> Drop:
        drop = await self.drop(drop_id)
        if drop.state == CLOSED:
            raise Conflict(f"drop {drop_id} is closed")
        return drop

    async def _status(self, drop: Drop, customer: str, place: int) -> Status:
        now = self.clock.now()
        state = drop.state_at(now)
        if state == CLOSED:
            return Status(drop.drop_id, CLOSED)
        available, held = await self.levels(drop)
        located = await self._advance(drop, customer, now, state, available)
        if located.kind == "unknown":
            # The store lost the ticket (a Redis that came back empty): the signed ticket
            # re-files it at its own place, so order is rebuilt as fans return (ADR 0026).
            await self.queue.file(drop.drop_id, customer, place)
            located = await self._advance(drop, customer, now, state, available)
        return _status_of(drop, state, located, now, available, held)

    async def _advance(
        self, drop: Drop, customer: str, now: float, state: str, available: int
    ) -> Located:
        located = await self.queue.advance(
            drop.drop_id,
            customer,
            now,
            admit=state == OPEN,
            rate_per_s=drop.rate_per_s,
            available=available,
            pass_ttl_s=drop.pass_ttl_s,
        )
        tags = {"drop": drop.drop_id}
        self.metrics.set(WR_QUEUE, located.waiting, tags)
        if located.admitted_places:
            self.metrics.inc(WR_ADMITTED, len(located.admitted_places), tags)
            for place in located.admitted_places:
                self.metrics.observe(WR_WAIT, max(0.0, now - bots.arrival_of(place)), tags)
        return located


def _status_of(
    drop: Drop, state: str, located: Located, now: float, available: int, held: int
) -> Status:
    if located.kind == ADMITTED:
        expires = located.admitted_at + drop.pass_ttl_s
        kind = ADMITTED if now < expires else EXPIRED
        return Status(drop.drop_id, kind, 0, located.waiting, 0.0, pass_expires_at=expires)
    position = located.rank + 1
    if available <= 0:  # nobody can buy now: told at once, not after waiting
        return Status(drop.drop_id, SOLD_OUT, position, located.waiting, None, held)
    wait = round(position / drop.rate_per_s, 1) if state == OPEN else None
    shown = WAITING if state == OPEN else state  # scheduled or paused
    return Status(drop.drop_id, shown, position, located.waiting, wait)


# -- operators ---------------------------------------------------------------------------------

_FROM = {
    OPEN: (SCHEDULED, PAUSED),
    PAUSED: (SCHEDULED, OPEN),
    CLOSED: (SCHEDULED, OPEN, PAUSED),
}


class DropAdmin:
    """The operators' side: lifecycle, rate, statistics. Audited by the callers (admin API,
    CLI), which know who acts."""

    def __init__(
        self,
        drops: DropStore,
        queue: QueueStore,
        stock: StockLevels,
        clock: Clock,
        rates: RateSource | None = None,
    ) -> None:
        self.drops = drops
        self.queue = queue
        self.stock = stock
        self.clock = clock
        self.rates = rates or RateSource()

    async def create(self, spec: DropIn, request_id: str) -> Drop:
        rate = self.rates.resolve(spec.rate_per_s)  # "auto" without a profile: refused here
        drop = Drop(
            drop_id=drop_id_for(request_id),
            name=spec.name,
            skus=tuple(spec.skus),
            state=SCHEDULED,
            opens_at=spec.opens_at,
            rate_per_s=rate.per_s,
            pass_ttl_s=spec.pass_ttl_s,
            pow_bits=spec.pow_bits,
            address_limit=spec.address_limit,
            created_at=self.clock.now(),
            rate_source=rate.source,
        )
        return await self.drops.create(drop)

    async def get(self, drop_id: str) -> Drop:
        drop = await self.drops.get(drop_id)
        if drop is None:
            raise NotFound("drop", drop_id)
        return drop

    async def open(self, drop_id: str) -> Drop:
        return await self._move(drop_id, OPEN, "open")

    async def pause(self, drop_id: str) -> Drop:
        return await self._move(drop_id, PAUSED, "pause")

    async def resume(self, drop_id: str) -> Drop:
        drop = await self.get(drop_id)
        if drop.state == SCHEDULED:
            raise Conflict(f"drop {drop_id} is scheduled, not paused: open it instead")
        return await self._move(drop_id, OPEN, "resume")

    async def close(self, drop_id: str) -> Drop:
        return await self._move(drop_id, CLOSED, "close")

    async def set_rate(self, drop_id: str, rate_per_s: Rate) -> Drop:
        rate = self.rates.resolve(rate_per_s)
        await self.get(drop_id)
        changed = await self.drops.set_rate(drop_id, rate.per_s, rate.source)
        if changed is None:
            raise Conflict(f"drop {drop_id} is closed")
        return changed

    async def stats(self, drop_id: str) -> dict[str, Any]:
        drop = await self.get(drop_id)
        now = self.clock.now()
        available, held = await self.stock.levels(drop.skus)
        queue = await self.queue.stats(drop_id, now)
        return {**drop.to_dict(now), "available": available, "held": held, "queue": queue}

    async def _move(self, drop_id: str, state: str, verb: str) -> Drop:
        drop = await self.get(drop_id)
        if drop.state == state:
            return drop  # idempotent: opening an open drop answers the same
        allowed = _FROM[state]
        if drop.state not in allowed:
            raise Conflict(f"drop {drop_id} is {drop.state}: cannot {verb} it")
        moved = await self.drops.set_state(drop_id, state, allowed)
        if moved is None:
            raise Conflict(f"drop {drop_id} changed meanwhile: read it and try again")
        return moved
