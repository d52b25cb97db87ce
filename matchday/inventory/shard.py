"""ShardCore: many SKU ledgers, one writer, group-committed, fenced, recoverable.

The Ray actor in ``actors/inventory.py`` is a thin wrapper around this class. Batches are
applied strictly one at a time (``_lock``): apply every mutation in memory, write the whole
batch in one transaction, and only then answer. Mutations and answers are wire tuples
(``matchday.inventory.wire``); :meth:`ShardCore.apply` is the typed form of the same call.

When storage refuses a batch for a reason it names (a cart went to checkout, a SKU moved,
a request id was journaled before), the transaction rolled back and only the batch's SKUs
are ahead of storage: they are reloaded and the batch applied again. After any other
failure the shard cannot know what committed, so it reloads everything before the next batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from matchday.domain.clock import Clock, SystemClock
from matchday.domain.errors import (
    CartClosed,
    MatchdayError,
    StaleEpoch,
    Unavailable,
    UnknownSku,
    WrongShard,
)
from matchday.inventory.allocation import ChannelStock
from matchday.inventory.changes import R_CART, R_EXPIRES, R_ID, R_QTY, R_SKU, Changes
from matchday.inventory.commands import DEFAULT_POLICY, Mutation, Outcome, Policy
from matchday.inventory.expiry import Expiry
from matchday.inventory.ids import reservation_id
from matchday.inventory.ledger import SkuLedger
from matchday.inventory.records import BatchRefused, BatchWrite, ShardRepository, ShardState
from matchday.inventory.routing import Router
from matchday.inventory.wire import (
    ADJUST_LIMITS,
    CHANNEL_RESERVE,
    ERROR,
    EXTEND,
    RESERVATION,
    RESERVE,
    RESIZE,
    WireMutation,
    WireOutcome,
    as_wire,
    check,
    error,
    exception_of,
    outcome_from_wire,
    refusal,
)

log = logging.getLogger(__name__)

# Errors that depend on routing or on a passing failure, not on the request: never remembered
# as "the first answer", so a retry after the cause is gone can succeed.
_TRANSIENT = frozenset(cls.code for cls in (WrongShard, UnknownSku, Unavailable, StaleEpoch))

# A batch that storage refused (a cart closed meanwhile, ...) is applied again this often
# before its callers hear a retryable Unavailable.
MAX_ATTEMPTS = 3

_CART_KINDS = frozenset({RESERVE, RESIZE})  # may take more units for a cart
_TIMED_KINDS = frozenset({RESERVE, EXTEND, CHANNEL_RESERVE})  # set a reservation's deadline

_DISPATCH: tuple[Callable[[SkuLedger, Changes, WireMutation, float], Any], ...] = (
    SkuLedger.reserve,
    SkuLedger.release,
    SkuLedger.commit,
    SkuLedger.extend,
    SkuLedger.resize,
    SkuLedger.restock,
    SkuLedger.set_on_hand,
    SkuLedger.adjust_limits,
    SkuLedger.expire,
    SkuLedger.expire,  # REVOKE: journal only, refused by wire.check before this
    SkuLedger.adjust,
    SkuLedger.allocate,
    SkuLedger.reserve_channel,
)


def _wrote(ch: Changes, request_id: str) -> bool:
    """Did the mutation just applied log a change (an extend of a hold that already lasts
    long enough does not, and its deadline is armed already)?"""
    return bool(ch.entries) and ch.entries[-1][1] == request_id


class ShardCore(Expiry):
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
        after_recovery: Callable[[], None] | None = None,
    ) -> None:
        self.shard_id = shard_id
        self.router = router
        self._dedicated = shard_id in router.dedicated  # owns pinned SKUs only
        self.repo = repo
        self.clock = clock or SystemClock()
        self.policy = policy
        self.cache_size = cache_size
        self.dedupe_window_s = dedupe_window_s
        self.after_recovery = after_recovery
        self.epoch = 0
        self.ledgers: dict[str, SkuLedger] = {}
        self.healthy = False
        self.fenced = False
        self.recoveries = 0
        self.wake = asyncio.Event()
        self._lock = asyncio.Lock()
        # Answers given, by request id, in two generations: when the young one holds half of
        # cache_size, the old one is dropped whole (no per-entry bookkeeping on the hot path).
        self._young: dict[str, WireOutcome] = {}
        self._old: dict[str, WireOutcome] = {}
        # A retry applied as new meets the journal's unique request key: storage refuses the
        # batch and it is applied again with a look-up. Until this time after a restart, a
        # request that changed nothing may also be a retry of one answered before it, so
        # those alone are looked up in the journal (``_answer_unjournaled``).
        self._lookup_until = 0.0
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
        self._young, self._old = {}, {}
        # The first start claims the shard outright (Ray restarted us: any older incarnation
        # is dead or a zombie). A later recovery only continues our own epoch.
        try:
            self.epoch = await self.repo.claim_epoch(
                self.shard_id, self.epoch if self.recoveries else None
            )
        except StaleEpoch:
            self.fenced = True
            raise
        state = await self.repo.load_shard(self.shard_id, self.epoch, pinned_only=self._dedicated)
        self._install(state)
        self._lookup_until = self.clock.now() + self.dedupe_window_s
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
        if self.after_recovery is not None:
            self.after_recovery()

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
            ledger = self.ledgers.get(r[R_SKU])
            if ledger is not None:
                ledger.load_reservation(r)
                self._arm(r[R_EXPIRES], r[R_ID], r[R_SKU])
        for sku, customer, units in state.customer_units:
            ledger = self.ledgers.get(sku)
            if ledger is not None:
                ledger.load_customer_units(customer, units)
        for sku, channel, max_units, max_percent, held, sold in state.channels:
            ledger = self.ledgers.get(sku)
            if ledger is not None:
                ledger.load_channel(channel, ChannelStock(max_units, max_percent, held, sold))

    # -- the batch path ------------------------------------------------------------------

    async def apply(self, mutations: Sequence[Mutation | WireMutation]) -> list[Outcome]:
        """The typed form of :meth:`apply_wire` (tests, tools, in-process callers)."""
        wires = [as_wire(m) for m in mutations]
        return [outcome_from_wire(o) for o in await self.apply_wire(wires)]

    async def apply_wire(self, batch: list[WireMutation]) -> list[WireOutcome]:
        async with self._lock:
            if not self.healthy:
                try:
                    await self._recover()
                except MatchdayError as exc:
                    return [error(exc)] * len(batch)
                except Exception as exc:
                    log.warning("shard %s cannot recover: %s", self.shard_id, exc)
                    return [refusal(Unavailable, "inventory storage unavailable")] * len(batch)
            try:
                return await self._apply(batch)
            except StaleEpoch as exc:
                self.fenced = True
                self.healthy = False
                log.error("shard %s fenced off: %s", self.shard_id, exc)
                return [error(exc)] * len(batch)
            except Exception as exc:
                # Memory may be ahead of storage now: forget it, reload before the next batch.
                self.healthy = False
                log.warning("shard %s batch failed, will recover: %r", self.shard_id, exc)
                err = exc if isinstance(exc, Unavailable) else Unavailable("inventory write failed")
                return [error(err)] * len(batch)

    async def _apply(self, batch: list[WireMutation]) -> list[WireOutcome]:
        now = self.clock.now()
        outs: list[WireOutcome | None] = [None] * len(batch)
        todo = self._triage(batch, outs)
        closed: dict[str, str] = {}
        looked_up = False
        for _ in range(MAX_ATTEMPTS):
            misrouted = await self._load_unknown({batch[i][2] for i in todo})
            bought = await self._bought(batch, todo)
            ch = Changes(reservation_id)
            answered, armed = self._run(batch, todo, outs, ch, misrouted, bought, closed, now)
            if not ch.entries:
                break
            try:
                await self.repo.write_batch(BatchWrite.of(ch, self.shard_id, self.epoch, now))
                break
            except BatchRefused as refused:
                await self._undo(ch)
                closed.update(refused.closed_carts)
                if refused.duplicate:
                    todo = await self._answer_from_journal(batch, todo, outs)
                    looked_up = True
        else:
            failed = refusal(Unavailable, "inventory batch refused by storage; retry")
            for i in todo:
                outs[i] = failed
            return outs  # type: ignore[return-value]
        if now < self._lookup_until and not looked_up:
            await self._answer_unjournaled(batch, todo, outs, answered, ch)
        self._remember(answered)
        for at, rid, sku in armed:
            self._arm(at, rid, sku)
        return outs  # type: ignore[return-value]

    def _triage(self, batch: list[WireMutation], outs: list[WireOutcome | None]) -> list[int]:
        """Answer malformed and already-answered mutations; the indexes left to apply."""
        todo = []
        young, old, policy, ledgers = self._young, self._old, self.policy, self.ledgers
        for i, m in enumerate(batch):
            bad = check(m, policy, ledgers)
            if bad is not None:
                outs[i] = error(bad)
                continue
            hit = young.get(m[1]) or old.get(m[1])
            if hit is not None:
                outs[i] = hit
            else:
                todo.append(i)
        return todo

    def _run(
        self,
        batch: list[WireMutation],
        todo: list[int],
        outs: list[WireOutcome | None],
        ch: Changes,
        misrouted: Mapping[str, WireOutcome],
        bought: Mapping[str, dict[str, int]],
        closed: Mapping[str, str],
        now: float,
    ) -> tuple[dict[str, WireOutcome], list[tuple[float, str, str]]]:
        """Apply ``todo`` in memory; the answers to remember and the timers to arm."""
        ledgers = self.ledgers
        # Answers given in this batch: a duplicate within it must find its twin even when
        # the batch is larger than the cache.
        answered: dict[str, WireOutcome] = {}
        armed: list[tuple[float, str, str]] = []
        for i in todo:
            m = batch[i]
            rid = m[1]
            twin = answered.get(rid)
            if twin is not None:
                outs[i] = twin
                continue
            sku = m[2]
            ledger = ledgers.get(sku)
            if ledger is None:
                outs[i] = misrouted[sku]
                continue
            kind = m[0]
            if closed and kind in _CART_KINDS:
                cart = _cart_growing(ledger, m)
                status = None if cart is None else closed.get(cart)
                if status is not None:
                    outs[i] = answered[rid] = refusal(CartClosed, cart, status)
                    continue
            if kind == ADJUST_LIMITS:
                out = ledger.adjust_limits(ch, m, now, bought.get(sku))
            else:
                out = _DISPATCH[kind](ledger, ch, m, now)
            if out is None:  # an expiry that no longer applies
                outs[i] = ledger.stock_wire()
                continue
            outs[i] = answered[rid] = out
            if (
                kind in _TIMED_KINDS
                and out[0] == RESERVATION
                and (kind != EXTEND or _wrote(ch, rid))
            ):
                armed.append((out[6], out[1], sku))
        return answered, armed

    async def _undo(self, ch: Changes) -> None:
        """Storage rolled the batch back: reload its SKUs (those this shard still owns)."""
        skus = list(ch.touched)
        for sku in skus:
            self.ledgers.pop(sku, None)
        self._install(await self.repo.reload_skus(self.shard_id, skus, pinned_only=self._dedicated))

    async def _bought(
        self, batch: list[WireMutation], todo: list[int]
    ) -> dict[str, dict[str, int]]:
        """Units bought per customer, for the SKUs whose per-customer limit this batch sets
        where none applied (replaying the batch's limit changes in order)."""
        limited: dict[str, bool] = {}
        wanted = []
        for i in todo:
            m = batch[i]
            ledger = self.ledgers.get(m[2])
            if m[0] != ADJUST_LIMITS or ledger is None or (m[5] is not None and m[4] is None):
                continue
            was = limited.get(m[2], ledger.customer_units is not None)
            if m[3] is not None and not was:
                wanted.append(m[2])
            limited[m[2]] = m[3] is not None
        if not wanted:
            return {}
        found = await self.repo.bought_units(sorted(set(wanted)))
        return {sku: found.get(sku, {}) for sku in wanted}

    async def _answer_from_journal(
        self, batch: list[WireMutation], todo: list[int], outs: list[WireOutcome | None]
    ) -> list[int]:
        found = await self.repo.lookup_results([batch[i][1] for i in todo])
        rest = []
        for i in todo:
            rid = batch[i][1]
            out = found.get(rid)
            if out is None:
                rest.append(i)
            else:
                outs[i] = self._young[rid] = out
        return rest

    async def _answer_unjournaled(
        self,
        batch: list[WireMutation],
        todo: list[int],
        outs: list[WireOutcome | None],
        answered: dict[str, WireOutcome],
        ch: Changes,
    ) -> None:
        """After a restart, the first answer of a retried request that changed nothing now.

        A retry that changes something again meets the journal's unique request key: its
        batch is refused and answered from the journal (``_apply``). Only one that changed
        nothing this time (a release of a hold it released before the restart, a reserve now
        refused) could be answered differently from the first time, so only those are looked
        up: the hot path, whose requests all write, makes no look-up at all.
        """
        written = {e[1] for e in ch.entries}
        quiet = [i for i in todo if batch[i][1] not in written]
        if not quiet:
            return
        found = await self.repo.lookup_results(list({batch[i][1] for i in quiet}))
        for i in quiet:
            out = found.get(batch[i][1])
            if out is not None:
                outs[i] = answered[batch[i][1]] = out

    async def _load_unknown(self, skus: set[str]) -> dict[str, WireOutcome]:
        unknown = sorted(s for s in skus if s not in self.ledgers)
        if not unknown:
            return {}
        errors: dict[str, WireOutcome] = {}
        pins = await self.repo.peek_skus(unknown)
        mine = []
        for sku in unknown:
            if sku not in pins:
                errors[sku] = refusal(UnknownSku, sku)
                continue
            owner = self.router.owner_given_pin(sku, pins[sku])
            if owner != self.shard_id:
                errors[sku] = refusal(WrongShard, sku, owner)
            else:
                mine.append(sku)
        if mine:
            claim = {sku: pins[sku] for sku in mine}
            self._install(await self.repo.claim_skus(self.shard_id, self.epoch, claim))
            for sku in mine:
                if sku not in self.ledgers:  # pinned elsewhere since the peek: route it again
                    errors[sku] = refusal(Unavailable, "inventory SKU is moving between shards")
        return errors

    def _remember(self, answered: dict[str, WireOutcome]) -> None:
        young = self._young
        for rid, out in answered.items():
            if out[0] != ERROR or out[1] not in _TRANSIENT:
                young[rid] = out
        if len(young) * 2 >= self.cache_size:
            self._old, self._young = young, {}

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
                raise exception_of(err)
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
            "cached_requests": len(self._young) + len(self._old),
            "recoveries": self.recoveries,
        }


def _cart_growing(ledger: SkuLedger, m: WireMutation) -> str | None:
    """The cart a reserve, or a resize that grows its hold, takes more units for."""
    if m[0] == RESERVE:
        return str(m[4])
    r = ledger.held.get(m[3])
    return str(r[R_CART]) if r is not None and m[4] > r[R_QTY] else None
