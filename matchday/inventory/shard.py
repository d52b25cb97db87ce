"""ShardCore: many SKU ledgers, one writer, group-committed, fenced, recoverable.

The Ray actor in ``actors/inventory.py`` is a thin wrapper around this class. Batches are
applied strictly one at a time (``_lock``): apply every mutation in memory, write the whole
batch in one transaction, and only then answer. A failed write leaves memory ahead of
storage, so the shard throws its memory away and reloads from storage before the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from matchday.domain.clock import Clock, SystemClock
from matchday.domain.errors import (
    InvalidInput,
    MatchdayError,
    StaleEpoch,
    Unavailable,
    UnknownSku,
    WrongShard,
)
from matchday.inventory.commands import (
    DEFAULT_POLICY,
    AdjustLimits,
    Commit,
    Expire,
    Extend,
    Mutation,
    Outcome,
    Policy,
    Release,
    Reserve,
    Resize,
    Restock,
    SetOnHand,
    fields_of,
    outcome_from_record,
    outcome_to_record,
    validate,
)
from matchday.inventory.ledger import Event, SkuLedger
from matchday.inventory.records import BatchWrite, JournalRow, ShardRepository, ShardState, SkuRow
from matchday.inventory.routing import Router

log = logging.getLogger(__name__)

# Errors that depend on routing or on a passing failure, not on the request: never remembered
# as "the first answer", so a retry after the cause is gone can succeed.
_TRANSIENT = (WrongShard, UnknownSku, Unavailable, StaleEpoch)

# How often an unhealthy shard with no traffic retries recovery.
RECOVERY_RETRY_S = 0.5


def new_reservation_id() -> str:
    return "r-" + uuid.uuid4().hex


class ShardCore:
    def __init__(
        self,
        shard_id: int,
        router: Router,
        repo: ShardRepository,
        *,
        clock: Clock | None = None,
        policy: Policy = DEFAULT_POLICY,
        cache_size: int = 200_000,
        dedupe_window_s: float = 600.0,
        new_id: Callable[[], str] = new_reservation_id,
    ) -> None:
        self.shard_id = shard_id
        self.router = router
        self.repo = repo
        self.clock = clock or SystemClock()
        self.policy = policy
        self.cache_size = cache_size
        self.dedupe_window_s = dedupe_window_s
        self.new_id = new_id
        self.epoch = 0
        self.ledgers: dict[str, SkuLedger] = {}
        self.healthy = False
        self.fenced = False
        self.recoveries = 0
        self.wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._cache: OrderedDict[str, tuple[float, Outcome]] = OrderedDict()
        # Until this time a request id missing from the cache may still be in the journal
        # (the shard restarted, or the cache evicted it), so misses are looked up there.
        self._dedupe_until = 0.0
        self._heap: list[tuple[float, str, str]] = []

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        async with self._lock:
            await self._recover()

    async def _recover(self) -> None:
        if self.fenced:
            raise StaleEpoch(self.shard_id, self.epoch, -1)
        self.healthy = False
        self.ledgers = {}
        self._heap = []
        self._cache.clear()
        # The first start claims the shard outright (Ray restarted us: any older incarnation
        # is dead or a zombie). A later recovery only continues our own epoch.
        try:
            self.epoch = await self.repo.claim_epoch(
                self.shard_id, self.epoch if self.recoveries else None
            )
        except StaleEpoch:
            self.fenced = True
            raise
        state = await self.repo.load_shard(self.shard_id, self.epoch)
        self._install(state)
        self._dedupe_until = self.clock.now() + self.dedupe_window_s
        self.healthy = True
        self.recoveries += 1
        self.wake.set()
        log.info(
            "shard %s epoch %s recovered %s SKUs, %s held reservations",
            self.shard_id,
            self.epoch,
            len(state.skus),
            len(state.reservations),
        )

    def _install(self, state: ShardState) -> None:
        for row in state.skus:
            self.ledgers[row.sku] = SkuLedger(
                row.sku,
                row.on_hand,
                row.reserved,
                row.sold,
                row.per_customer_limit,
                row.low_stock_threshold,
                row.low_stock_order_cap,
            )
        for r in state.reservations:
            ledger = self.ledgers.get(r.sku)
            if ledger is not None:
                ledger.load_reservation(r)
                self._arm(r.expires_at, r.reservation_id, r.sku)
        for sku, customer, units in state.customer_units:
            ledger = self.ledgers.get(sku)
            if ledger is not None:
                ledger.load_customer_units(customer, units)

    # -- the batch path ------------------------------------------------------------------

    async def apply(self, mutations: list[Mutation]) -> list[Outcome]:
        async with self._lock:
            if not self.healthy:
                try:
                    await self._recover()
                except MatchdayError as exc:
                    return [Outcome(error=exc)] * len(mutations)
                except Exception as exc:
                    log.warning("shard %s cannot recover: %s", self.shard_id, exc)
                    return [Outcome(error=Unavailable("inventory storage unavailable"))] * len(
                        mutations
                    )
            try:
                return await self._apply(mutations)
            except StaleEpoch as exc:
                self.fenced = True
                self.healthy = False
                log.error("shard %s fenced off: %s", self.shard_id, exc)
                return [Outcome(error=exc)] * len(mutations)
            except Exception as exc:
                # Memory may be ahead of storage now: forget it, reload before the next batch.
                self.healthy = False
                log.warning("shard %s batch failed, will recover: %r", self.shard_id, exc)
                err = exc if isinstance(exc, Unavailable) else Unavailable("inventory write failed")
                return [Outcome(error=err)] * len(mutations)

    async def _apply(self, mutations: list[Mutation]) -> list[Outcome]:
        now = self.clock.now()
        outcomes: list[Outcome | None] = [None] * len(mutations)
        todo: list[int] = []
        for i, m in enumerate(mutations):
            try:
                validate(m, self.policy)
            except InvalidInput as exc:
                outcomes[i] = Outcome(error=exc)
                continue
            cached = self._cache.get(m.request_id)
            if cached is not None:
                outcomes[i] = cached[1]
            else:
                todo.append(i)

        if todo and now < self._dedupe_until:
            todo = await self._answer_from_journal(mutations, todo, outcomes, now)

        misrouted = await self._load_unknown({mutations[i].sku for i in todo})
        batch = BatchWrite(self.shard_id, self.epoch)
        events: dict[str, list[Event]] = defaultdict(list)
        armed: list[tuple[float, str, str]] = []
        # Answers given in this batch: a duplicate within it must find its twin even when
        # the batch is larger than the cache and evicted it.
        answered: dict[str, Outcome] = {}
        for i in todo:
            m = mutations[i]
            twin = answered.get(m.request_id)
            if twin is not None:
                outcomes[i] = twin
                continue
            if m.sku in misrouted:
                outcomes[i] = Outcome(error=misrouted[m.sku])
                continue
            ledger = self.ledgers[m.sku]
            try:
                applied = self._dispatch(ledger, m, now)
            except MatchdayError as exc:
                outcomes[i] = answered[m.request_id] = self._remember(
                    m.request_id, Outcome(error=exc), now
                )
                continue
            if applied is None:  # an expiry that no longer applies
                outcomes[i] = Outcome(value=ledger.stock())
                continue
            value, evs = applied
            outcome = self._remember(m.request_id, Outcome(value=value), now)
            outcomes[i] = answered[m.request_id] = outcome
            batch.journal.append(
                JournalRow(
                    m.request_id,
                    m.sku,
                    m.kind,
                    fields_of(m),
                    outcome_to_record(outcome),
                    now,
                )
            )
            events[m.sku].extend(evs)
            if isinstance(m, Reserve | Extend):
                armed.append((value.expires_at, value.reservation_id, m.sku))

        if not batch.empty:
            self._fill_batch(batch, events)
            await self.repo.write_batch(batch)
        for at, rid, sku in armed:
            self._arm(at, rid, sku)
        assert all(o is not None for o in outcomes)
        return outcomes  # type: ignore[return-value]

    def _dispatch(
        self, ledger: SkuLedger, m: Mutation, now: float
    ) -> tuple[Any, list[Event]] | None:
        if isinstance(m, Reserve):
            return ledger.reserve(m, self.new_id(), now)
        if isinstance(m, Release):
            return ledger.release(m, now)
        if isinstance(m, Commit):
            return ledger.commit(m, now)
        if isinstance(m, Extend):
            return ledger.extend(m, now)
        if isinstance(m, Resize):
            return ledger.resize(m, now)
        if isinstance(m, Restock):
            return ledger.restock(m, now)
        if isinstance(m, SetOnHand):
            return ledger.set_on_hand(m, now)
        if isinstance(m, AdjustLimits):
            return ledger.adjust_limits(m, now)
        if isinstance(m, Expire):
            return ledger.expire(m, now)
        raise InvalidInput("kind", f"unknown mutation {type(m).__name__}")

    def _fill_batch(self, batch: BatchWrite, events: dict[str, list[Event]]) -> None:
        for sku, evs in events.items():
            ledger = self.ledgers[sku]
            batch.counters.append(
                SkuRow(
                    sku,
                    ledger.on_hand,
                    ledger.reserved,
                    ledger.sold,
                    ledger.per_customer_limit,
                    ledger.low_stock_threshold,
                    ledger.low_stock_order_cap,
                )
            )
            reservations, customers = ledger.drain_dirty()
            batch.reservations.extend(reservations)
            batch.customer_units.extend((sku, c, units) for c, units in customers)
            batch.outbox.append((sku, evs))

    async def _answer_from_journal(
        self, mutations: list[Mutation], todo: list[int], outcomes: list[Outcome | None], now: float
    ) -> list[int]:
        found = await self.repo.lookup_results([mutations[i].request_id for i in todo])
        rest = []
        for i in todo:
            record = found.get(mutations[i].request_id)
            if record is None:
                rest.append(i)
            else:
                outcomes[i] = self._remember(
                    mutations[i].request_id, outcome_from_record(record), now
                )
        return rest

    async def _load_unknown(self, skus: set[str]) -> dict[str, MatchdayError]:
        unknown = sorted(s for s in skus if s not in self.ledgers)
        if not unknown:
            return {}
        errors: dict[str, MatchdayError] = {}
        pins = await self.repo.peek_skus(unknown)
        mine = []
        for sku in unknown:
            if sku not in pins:
                errors[sku] = UnknownSku(sku)
                continue
            owner = self.router.owner_given_pin(sku, pins[sku])
            if owner != self.shard_id:
                errors[sku] = WrongShard(sku, owner)
            else:
                mine.append(sku)
        if mine:
            self._install(await self.repo.claim_skus(self.shard_id, self.epoch, mine))
        return errors

    def _remember(self, request_id: str, outcome: Outcome, now: float) -> Outcome:
        if isinstance(outcome.error, _TRANSIENT):
            return outcome
        self._cache[request_id] = (now, outcome)
        while len(self._cache) > self.cache_size:
            _, (at, _) = self._cache.popitem(last=False)
            self._dedupe_until = max(self._dedupe_until, at + self.dedupe_window_s)
        return outcome

    # -- expiry --------------------------------------------------------------------------

    def _arm(self, at: float, reservation_id: str, sku: str) -> None:
        if not self._heap or at < self._heap[0][0]:
            self.wake.set()
        heapq.heappush(self._heap, (at, reservation_id, sku))

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def due_expiries(self, now: float) -> list[Expire]:
        """Pop every deadline that has passed and still applies (not extended, not closed)."""
        due = []
        while self._heap and self._heap[0][0] <= now:
            at, rid, sku = heapq.heappop(self._heap)
            ledger = self.ledgers.get(sku)
            if ledger is None or ledger.next_deadline(rid) != at:
                continue
            due.append(Expire(f"expire:{rid}:{round(at * 1000)}", sku, rid))
        return due

    async def run_timers(self, submit: Callable[[list[Mutation]], Awaitable[Any]]) -> None:
        """Exact expiry: sleep until the earliest deadline, never a periodic sweep."""
        while True:
            due = self.due_expiries(self.clock.now())
            if due:
                try:
                    await submit(list(due))
                except Exception as exc:
                    log.warning("shard %s expiry batch failed: %r", self.shard_id, exc)
            self.wake.clear()
            if not self.healthy and not self.fenced:
                # A failed write popped deadlines that nobody re-arms until the shard
                # recovers; on an idle shard no request would trigger that, so do it here.
                await self._recover_quietly()
            deadline = self.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock.now())
            if not self.healthy and not self.fenced:
                timeout = RECOVERY_RETRY_S  # storage still down: try again soon, do not spin
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)

    async def _recover_quietly(self) -> None:
        async with self._lock:
            if self.healthy or self.fenced:
                return
            try:
                await self._recover()
            except StaleEpoch:
                log.error("shard %s was superseded; it stays fenced", self.shard_id)
            except Exception as exc:
                log.warning("shard %s cannot recover yet: %r", self.shard_id, exc)

    # -- ownership changes ----------------------------------------------------------------

    async def evict(self, skus: Iterable[str]) -> list[str]:
        """Forget SKUs pinned elsewhere; a later request for them is answered WrongShard."""
        async with self._lock:
            return [s for s in skus if self.ledgers.pop(s, None) is not None]

    async def adopt(self, skus: list[str]) -> list[str]:
        """Claim SKUs routed here now instead of on their first request."""
        async with self._lock:
            if not self.healthy:
                await self._recover()
            errors = await self._load_unknown(set(skus))
            for err in errors.values():
                raise err
            return sorted(s for s in skus if s in self.ledgers)

    # -- reading -------------------------------------------------------------------------

    def stock(self, sku: str) -> Outcome:
        ledger = self.ledgers.get(sku)
        return Outcome(value=ledger.stock()) if ledger else Outcome(error=UnknownSku(sku))

    def stats(self) -> dict[str, Any]:
        return {
            "shard_id": self.shard_id,
            "epoch": self.epoch,
            "healthy": self.healthy,
            "fenced": self.fenced,
            "skus": len(self.ledgers),
            "held_reservations": sum(len(x.held) for x in self.ledgers.values()),
            "timers": len(self._heap),
            "cached_requests": len(self._cache),
            "recoveries": self.recoveries,
        }
