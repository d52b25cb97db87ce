"""Pulling a supplier's HTTP feed on its schedule: conditional, bounded, retried, breakered.

- **Conditional**: the last answer's ``ETag`` and ``Last-Modified`` go back as
  ``If-None-Match`` / ``If-Modified-Since``; a 304 costs the supplier and us nothing more.
- **Bounded**: each attempt has ``timeout_s`` in all (connect, headers and the whole body: a
  supplier that sends one byte a minute is as dead as one that never answers), and a body
  over ``max_bytes`` is refused as it streams in.
- **Retried** on what may pass (a connection error, a timeout, 5xx, 429) with jittered
  exponential backoff, ``attempts`` times; a 4xx other than 429 is the supplier's answer and
  is not retried.
- **Circuit breaker per supplier** (``matchday.payments.router.CircuitBreaker``, the one the
  payment gateways use): ``breaker_failures`` failed pulls in a row open it and pulls are
  skipped for ``breaker_reset_s``; then one trial pull decides.

A changed feed becomes a bulk sync (``bulk``): small ones run at once, big ones off-peak.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from matchday.domain.clock import Clock, SystemClock
from matchday.domain.errors import Unavailable
from matchday.metrics import NOOP, SUPPLIER_BREAKER_OPEN, SUPPLIER_PULLS, Metrics
from matchday.payments.router import CircuitBreaker
from matchday.suppliers.bulk import BulkSyncs
from matchday.suppliers.model import FeedRejected, Supplier

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PullTuning:
    # A feed of 100k lines is a few MB: seconds on any link. Past 20 s it is not coming.
    timeout_s: float = 20.0
    attempts: int = 3
    backoff_s: float = 1.0
    max_backoff_s: float = 10.0
    max_bytes: int = 64 << 20
    breaker_failures: int = 3
    # A supplier down for a while is polled again after five minutes, not every period.
    breaker_reset_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Fetched:
    changed: bool
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None


class FeedUnavailable(Unavailable):
    """The feed could not be read; ``skipped`` when its breaker is open."""

    code = "supplier_feed_unavailable"

    def __init__(self, reason: str, skipped: bool = False) -> None:
        Exception.__init__(self, reason, skipped)
        self.reason = reason
        self.skipped = skipped


class _Retry(Exception):
    pass


class FeedPuller:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        tuning: PullTuning | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.tuning = tuning or PullTuning()
        self.clock = clock or SystemClock()
        self.sleep = sleep
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, supplier_id: str) -> CircuitBreaker:
        b = self.breakers.get(supplier_id)
        if b is None:
            t = self.tuning
            b = self.breakers[supplier_id] = CircuitBreaker(
                t.breaker_failures, t.breaker_reset_s, self.clock
            )
        return b

    async def fetch(self, supplier: Supplier) -> Fetched:
        """The feed, or ``changed=False`` on a 304; :class:`FeedUnavailable` otherwise."""
        if not supplier.feed_url:
            raise FeedUnavailable(f"supplier {supplier.supplier_id} has no feed URL")
        breaker = self.breaker(supplier.supplier_id)
        if not breaker.allow():
            raise FeedUnavailable("circuit breaker open: the feed failed repeatedly", True)
        generation = breaker.generation
        try:
            fetched = await self._attempts(supplier, supplier.feed_url)
        except FeedUnavailable:
            breaker.failure(generation)
            raise
        except BaseException:
            breaker.trial_in_flight = False  # cancelled: neither an answer nor an outage
            raise
        breaker.success(generation)
        return fetched

    async def _attempts(self, supplier: Supplier, url: str) -> Fetched:
        t = self.tuning
        reason = ""
        for attempt in range(t.attempts):
            if attempt:
                delay = min(t.max_backoff_s, t.backoff_s * 2 ** (attempt - 1))
                await self.sleep(delay * (0.5 + self.rng.random()))
            try:
                return await asyncio.wait_for(self._get(supplier, url), t.timeout_s)
            except TimeoutError:
                reason = f"no whole answer within {t.timeout_s:g} s"
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}"
            except _Retry as exc:
                reason = str(exc)
        raise FeedUnavailable(f"{reason} ({t.attempts} attempts)")

    async def _get(self, supplier: Supplier, url: str) -> Fetched:
        headers = {"Accept": "application/json, text/csv"}
        if supplier.etag:
            headers["If-None-Match"] = supplier.etag
        if supplier.last_modified:
            headers["If-Modified-Since"] = supplier.last_modified
        async with self.client.stream("GET", url, headers=headers) as r:
            if r.status_code == 304:
                return Fetched(False)
            if r.status_code >= 500 or r.status_code == 429:
                raise _Retry(f"HTTP {r.status_code}")
            if r.status_code != 200:
                raise FeedUnavailable(f"HTTP {r.status_code} from the feed URL")
            body = await self._body(r)
            return Fetched(True, body, r.headers.get("etag"), r.headers.get("last-modified"))

    async def _body(self, r: httpx.Response) -> bytes:
        limit = self.tuning.max_bytes
        declared = r.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FeedUnavailable(f"feed of {declared} bytes is over {limit}")
        chunks, size = [], 0
        async for chunk in r.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise FeedUnavailable(f"feed over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


class Pulls:
    """Due pulls, each to its outcome: changed (a sync queued), not_modified, unchanged (a
    sync of the same content is still open), rejected (malformed, recorded), failed, skipped
    (breaker open)."""

    def __init__(self, bulk: BulkSyncs, puller: FeedPuller, *, metrics: Metrics = NOOP) -> None:
        self.bulk = bulk
        self.repo = bulk.suppliers
        self.puller = puller
        self.clock = bulk.clock
        self.metrics = metrics

    async def pull_due(self) -> dict[str, str]:
        due = await self.repo.due_pulls(self.clock.now())
        return {s.supplier_id: await self.pull(s) for s in due}

    async def pull(self, supplier: Supplier) -> str:
        sid = supplier.supplier_id
        started = self.clock.now()
        try:
            fetched = await self.puller.fetch(supplier)
        except FeedUnavailable as exc:
            log.warning("feed of %s: %s", sid, exc.reason)
            outcome = "skipped" if exc.skipped else "failed"
            await self.repo.record_pull(sid, None, None, started)  # next try: next period
        else:
            outcome = await self._queue(supplier, fetched, started)
        self.metrics.inc(SUPPLIER_PULLS, tags={"supplier": sid, "outcome": outcome})
        self.export_breakers()
        return outcome

    async def _queue(self, supplier: Supplier, fetched: Fetched, started: float) -> str:
        sid = supplier.supplier_id
        outcome = "not_modified"
        if fetched.changed:
            try:
                _, created = await self.bulk.queue(
                    sid,
                    fetched.body,
                    supplier.feed_format,
                    source="pull",
                    queued_by="pull",
                    as_of=started,
                )
                outcome = "changed" if created else "unchanged"
            except FeedRejected as exc:
                await self.bulk.record_rejected(sid, fetched.body, exc, "pull")
                outcome = "rejected"
        # Only now: a feed that could not be queued is fetched whole again next time.
        await self.repo.record_pull(sid, fetched.etag, fetched.last_modified, started)
        return outcome

    def export_breakers(self) -> None:
        for sid, b in self.puller.breakers.items():
            self.metrics.set(SUPPLIER_BREAKER_OPEN, float(b.state == "open"), {"supplier": sid})
