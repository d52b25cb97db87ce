"""Polls for shoppers and admins: metadata from PostgreSQL (memoised per process for a moment),
votes and tallies in Redis (matchday.polls.tally), personal offers derived per voter.

Votes never touch the inventory engine or the checkout path: they cost one Lua call in
Redis, and PostgreSQL sees them later, in batches, through the drain.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from matchday.domain.errors import InvalidInput, NotFound, Unavailable
from matchday.domain.ids import derived_id
from matchday.polls.live import LiveHub
from matchday.polls.models import (
    CLOSED,
    OPEN,
    AlreadyVoted,
    Offer,
    Poll,
    PollClosed,
    PollIn,
)
from matchday.polls.offers import OfferCodes, offer_product
from matchday.polls.ports import PollStore
from matchday.polls.tally import Tally

log = logging.getLogger(__name__)


class PollService:
    def __init__(
        self,
        repo: PollStore,
        redis: Redis,
        codes: OfferCodes,
        *,
        memo_ttl_s: float = 2.0,
        clock: Callable[[], float] = time.time,
        prefix: str = "matchday:poll",
    ) -> None:
        self.repo = repo
        self.codes = codes
        self.tally = Tally(redis, prefix)
        self.live = LiveHub(self.tally)
        self.memo_ttl_s = memo_ttl_s
        self.clock = clock
        self._polls: dict[str, tuple[float, Poll | None]] = {}
        self._placements: dict[str, tuple[float, list[Poll]]] = {}

    async def aclose(self) -> None:
        """Stop the live-results loops (the process or the test is ending)."""
        await self.live.aclose()

    # -- admin ---------------------------------------------------------------------------------

    async def create(self, spec: PollIn, request_id: str, who: str | None) -> dict[str, Any]:
        poll = await self.repo.create(derived_id("p", "poll", request_id), spec, who)
        self._forget(poll)
        return await self.render(poll, None)

    async def close(self, poll_id: str) -> dict[str, Any]:
        poll = await self.repo.close(poll_id)
        if poll is None:
            raise NotFound("poll", poll_id)
        self._forget(poll)
        try:
            await self.tally.close(poll_id)
        except Unavailable as exc:
            # PostgreSQL is the record and every replica re-reads it within memo_ttl_s.
            log.warning("poll %s closed, Redis not told: %s", poll_id, exc)
        return await self.render(poll, None)

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        return [await self.render(p, None) for p in await self.repo.recent(limit)]

    # -- shoppers ------------------------------------------------------------------------------

    async def poll(self, poll_id: str) -> Poll:
        now = time.monotonic()
        cached = self._polls.get(poll_id)
        if cached is None or cached[0] < now:
            cached = (now + self.memo_ttl_s, await self.repo.poll(poll_id))
            self._polls[poll_id] = cached
        if cached[1] is None:
            raise NotFound("poll", poll_id)
        return cached[1]

    async def listing(self, placement: str, customer: str | None) -> list[dict[str, Any]]:
        now = time.monotonic()
        cached = self._placements.get(placement)
        if cached is None or cached[0] < now:
            cached = (now + self.memo_ttl_s, await self.repo.open_polls(placement))
            self._placements[placement] = cached
        out = [await self.render(p, customer) for p in cached[1]]
        return [p for p in out if p["status"] == OPEN]

    async def view(self, poll_id: str, customer: str | None) -> dict[str, Any]:
        return await self.render(await self.poll(poll_id), customer)

    async def vote(
        self, poll_id: str, customer: str, option_id: str
    ) -> tuple[bool, dict[str, Any]]:
        """(new, answer). The same option again answers the same; another one is refused."""
        poll = await self.poll(poll_id)
        if poll.option(option_id) is None:
            raise InvalidInput("option_id", f"poll {poll_id} has no option {option_id}")
        now = self.clock()
        if not poll.open_at(now):  # closes_at passed, or closed as of the memo
            raise PollClosed(poll_id)
        result = await self.tally.vote(poll_id, customer, option_id, now)
        if result.outcome == "unloaded":
            await self.load(poll)
            result = await self.tally.vote(poll_id, customer, option_id, now)
        if result.outcome == "voted" and result.option_id != option_id:
            raise AlreadyVoted(poll_id, result.option_id or "")
        if result.outcome == "closed":
            raise PollClosed(poll_id)
        if result.outcome == "unloaded":
            raise Unavailable(f"poll {poll_id} is being reloaded; retry")
        snap = await self.snapshot(poll)
        offer = self.offer(poll, customer, option_id, result.voted_at or now)
        answer = {
            "poll_id": poll_id,
            "option_id": option_id,
            "results": snap["results"],
            "total": snap["total"],
            "offer": offer.to_dict() if offer else None,
        }
        return result.outcome == "new", answer

    def offer(self, poll: Poll, customer: str, option_id: str, voted_at: float) -> Offer | None:
        product = offer_product(poll, option_id)
        if poll.offer is None or product is None:
            return None
        expires_at = int(voted_at) + poll.offer.valid_s
        code = self.codes.issue(customer, poll.poll_id, option_id, expires_at)
        return Offer(code, poll.poll_id, poll.offer.percent_off, product, float(expires_at))

    # -- results -------------------------------------------------------------------------------

    async def snapshot(self, poll: Poll) -> dict[str, Any]:
        """{results, total, status}: from Redis, or from PostgreSQL while Redis is away."""
        try:
            status, counts = await self.tally.read(poll.poll_id)
            if status is None:
                await self.load(poll)
                status, counts = await self.tally.read(poll.poll_id)
        except Unavailable as exc:
            log.warning("poll %s results from PostgreSQL: %s", poll.poll_id, exc)
            status, counts = None, await self.repo.tally(poll.poll_id)
        closed = status == CLOSED or not poll.open_at(self.clock())
        results = {o.option_id: int(counts.get(o.option_id, 0)) for o in poll.options}
        return {
            "results": results,
            "total": sum(results.values()),
            "status": CLOSED if closed else OPEN,
        }

    async def load(self, poll: Poll) -> bool:
        """Rebuild a poll's Redis state from PostgreSQL (first use, or Redis lost it)."""
        fresh = await self.repo.poll(poll.poll_id)
        status = fresh.status if fresh else poll.status
        votes = await self.repo.votes(poll.poll_id)
        loaded = await self.tally.load(poll.poll_id, status, votes, secrets.token_hex(6))
        if loaded:
            log.info("poll %s loaded into Redis: %d votes", poll.poll_id, len(votes))
        return loaded

    async def render(self, poll: Poll, customer: str | None) -> dict[str, Any]:
        body = poll.to_dict(self.clock())
        snap = await self.snapshot(poll)
        body.update(results=snap["results"], total=snap["total"], status=snap["status"])
        body["my_vote"], body["offer"] = None, None
        if customer is not None:
            mine = await self._vote_of(poll, customer)
            if mine is not None:
                body["my_vote"] = mine[0]
                offer = self.offer(poll, customer, mine[0], mine[1])
                body["offer"] = offer.to_dict() if offer else None
        return body

    async def _vote_of(self, poll: Poll, customer: str) -> tuple[str, float] | None:
        try:
            return await self.tally.vote_of(poll.poll_id, customer)
        except Unavailable:
            return await self.repo.vote_of(poll.poll_id, customer)

    def _forget(self, poll: Poll) -> None:
        self._polls.pop(poll.poll_id, None)
        self._placements.pop(poll.placement, None)
