"""The pass check of add-to-cart, quantity changes and checkout (ADR 0026).

Each process keeps the map SKU -> drop of the drops not closed, refreshed from PostgreSQL
every ``REFRESH_S``. For a SKU outside every drop, :meth:`PassGate.needs` is the whole cost:
one clock read, one dict lookup and one dict increment (the lean add path must stay lean:
fast_add.py). A SKU in a drop needs a pass of that drop, bound to the shopper, live.

The increment counts add-path calls per SKU, the signal of automatic drops (auto.py): they
are flushed by ``on_refresh`` (``AutoDrops.tick``), run where the map is refreshed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

from matchday.domain.clock import Clock
from matchday.domain.errors import MatchdayError, Unavailable
from matchday.metrics import NOOP, WR_GATE_REFUSED, Metrics
from matchday.waitingroom.errors import PassRequired
from matchday.waitingroom.tokens import Tokens

log = logging.getLogger(__name__)

PASS_HEADER = "x-matchday-pass"  # noqa: S105 (a header name)
# A new drop binds its SKUs on every replica within this; create drops before their stock
# goes on sale.
REFRESH_S = 2.0
# Checkout accepts a pass this long past its expiry (the default hold TTL): its holds were
# taken while it was live, and they expire by themselves anyway.
CHECKOUT_GRACE_S = 900.0
# Counts kept across failed flushes, at most for this many SKUs (the busiest).
KEEP_SKUS = 1_000

LiveSkus = Callable[[], Awaitable[dict[str, str]]]
Spent = Callable[[str, str], Awaitable[None]]


class PassGate:
    def __init__(
        self,
        live_skus: LiveSkus,
        tokens: Tokens,
        clock: Clock,
        spent: Spent | None = None,
        *,
        refresh_s: float = REFRESH_S,
        monotonic: Callable[[], float] = time.monotonic,
        metrics: Metrics = NOOP,
    ) -> None:
        self.metrics = metrics
        self._live_skus = live_skus
        self.tokens = tokens
        self.clock = clock
        self._spent = spent
        self.refresh_s = refresh_s
        self._monotonic = monotonic
        self.skus: dict[str, str] = {}
        self._next = 0.0
        self._loaded = False
        self._lock = asyncio.Lock()
        # Add-path calls per SKU since the last flush; None (not counted) unless automatic
        # drops are on (count_demand).
        self.demand: dict[str, int] | None = None
        self.on_refresh: Callable[[], None] | None = None  # must not block (AutoDrops.tick)

    def needs(self, sku: str) -> bool:
        """Whether :meth:`require` has anything to do for ``sku`` (else skip it). Counts the
        call: it is asked once per add and per quantity increase."""
        demand = self.demand
        if demand is not None:
            demand[sku] = demand.get(sku, 0) + 1
        return sku in self.skus or self._monotonic() >= self._next

    def count_demand(self) -> None:
        """Start counting add-path calls per SKU (for automatic drops)."""
        if self.demand is None:
            self.demand = {}

    def take_demand(self) -> dict[str, int]:
        """The counts since the last call, and start again from zero."""
        counts, self.demand = self.demand or {}, {}
        return counts

    def give_back(self, counts: Mapping[str, int]) -> None:
        """Counts a flush could not store: added back, for the next one. Only the busiest
        SKUs are kept, so a long outage under a flood of made-up SKUs stays bounded."""
        demand = self.demand if self.demand is not None else {}
        for sku, n in counts.items():
            demand[sku] = demand.get(sku, 0) + n
        if len(demand) > KEEP_SKUS:
            demand = dict(sorted(demand.items(), key=lambda x: -x[1])[:KEEP_SKUS])
        self.demand = demand

    async def require(
        self, sku: str, passes: str | None, customer: str, grace_s: float = 0.0
    ) -> str | None:
        """The drop whose pass let ``customer`` have ``sku``; None for a SKU in no drop.
        ``passes``: the X-Matchday-Pass header (several passes separated by commas)."""
        await self.fresh()
        drop_id = self.skus.get(sku)
        if drop_id is None:
            return None
        try:
            token = pass_of(passes, drop_id)
            if token is None:
                raise PassRequired(sku, drop_id)
            self.tokens.check_pass(token, drop_id, customer, self.clock.now(), grace_s)
        except MatchdayError as exc:
            self.metrics.inc(WR_GATE_REFUSED, tags={"code": exc.code})
            raise
        return drop_id

    async def require_all(self, skus: Iterable[str], passes: str | None, customer: str) -> None:
        """Checkout: every drop SKU of the cart needs its drop's pass (with the grace)."""
        for sku in sorted(set(skus)):
            await self.require(sku, passes, customer, CHECKOUT_GRACE_S)

    async def spent(self, drop_id: str, customer: str) -> None:
        """The pass holder took a hold; best effort (the headroom is an estimate)."""
        if self._spent is None:
            return
        try:
            await self._spent(drop_id, customer)
        except Exception as exc:  # Redis away: admission may run ahead; the engine still
            log.warning("waiting room: hold of %s not recorded: %s", drop_id, exc)  # refuses

    async def fresh(self) -> None:
        if self._monotonic() < self._next:
            return
        if self._lock.locked() and self._loaded:
            return  # another request refreshes; the map in hand is at most one period old
        async with self._lock:
            if self._monotonic() < self._next:
                return
            if self.on_refresh is not None:
                self.on_refresh()
            try:
                self.skus = await self._live_skus()
                self._loaded = True
                self._next = self._monotonic() + self.refresh_s
            except Exception as exc:
                self._next = self._monotonic() + min(1.0, self.refresh_s)
                if not self._loaded:
                    raise Unavailable("the drops of the waiting room cannot be read") from exc
                log.warning("waiting room: keeping the drop SKUs in hand: %s", exc)


def pass_of(passes: str | None, drop_id: str) -> str | None:
    """The pass of ``drop_id`` among those a header carries."""
    if not passes:
        return None
    if "," not in passes:
        return passes.strip()
    marker = f".{drop_id}."
    for token in passes.split(","):
        if marker in token:
            return token.strip()
    return passes.split(",")[0].strip()
