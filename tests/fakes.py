"""In-memory stand-ins for time, storage and the gateway, for tests without PostgreSQL,
Redis or Ray. Each storage fake behaves like the repository it stands for (the same guards,
the same answers to a retry) and implements the feature's ports (``shop/ports.py``,
``payments/ports.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from matchday.domain.errors import Conflict, StaleEpoch, Unavailable
from matchday.domain.prices import PriceInfo
from matchday.inventory.changes import R_ID, Entry, reservation_view
from matchday.inventory.commands import ReservationView
from matchday.inventory.journal import answers
from matchday.inventory.records import BatchRefused, BatchWrite, ShardState, SkuRow
from matchday.inventory.wire import RESERVATION, WireOutcome
from matchday.payments.gateway import ChargeRequest, ChargeResult, RefundResult
from matchday.payments.ports import Attempt
from matchday.polls.models import OfferInvalid
from matchday.shop import models as st
from matchday.shop.models import Cart, CartLine, Order, OrderLine


class ManualClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeShardRepository:
    """Behaves like InventoryRepository: fencing, ownership, the cart fence, the journal with
    its unique request ids, the outbox; can fail on cue. ``carts`` stands for the shop's
    carts table (cart id -> status); a cart it does not name counts as open."""

    def __init__(self) -> None:
        self.epochs: dict[int, int] = {}
        self.skus: dict[str, SkuRow] = {}
        self.owner: dict[str, int] = {}
        self.pins: dict[str, int] = {}
        self.reservations: dict[str, ReservationView] = {}  # the reservations table
        self.customer_units: dict[tuple[str, str], int] = {}
        self.channels: dict[tuple[str, str], tuple[Any, ...]] = {}  # the channel_stock table
        self.carts: dict[str, str] = {}
        self.batches: list[BatchWrite] = []  # the journal: batch id = index + 1
        self.requests: dict[str, int] = {}  # request id -> batch id
        # Request ids whose 64-bit journal key another request id already took.
        self.collisions: set[str] = set()
        self.outbox: list[tuple[int, list[str]]] = []  # (batch id, its SKUs)
        self.fail_writes = 0  # fail this many upcoming write_batch calls
        self.writes = 0

    def add_sku(self, sku: str, on_hand: int, owner: int = 0, **limits: Any) -> None:
        self.skus[sku] = SkuRow(sku, on_hand, 0, 0, **limits)
        self.owner[sku] = owner

    @property
    def entries(self) -> list[Entry]:
        """Every journal entry, in order."""
        return [e for b in self.batches for e in b.entries]

    def journaled(self, request_id: str) -> list[Entry]:
        return [e for e in self.entries if e[1] == request_id]

    async def claim_epoch(self, shard_id: int, expected: int | None = None) -> int:
        if expected is not None and self.epochs.get(shard_id) != expected:
            raise StaleEpoch(shard_id, expected, self.epochs.get(shard_id, -1))
        self.epochs[shard_id] = self.epochs.get(shard_id, 0) + 1
        return self.epochs[shard_id]

    def _state(self, skus: list[str]) -> ShardState:
        wanted = set(skus)
        limited = {s for s in wanted if self.skus[s].per_customer_limit is not None}
        return ShardState(
            skus=[self.skus[s] for s in skus],
            reservations=[
                _held(r)
                for r in self.reservations.values()
                if r.sku in wanted and r.status == "held"
            ],
            channels=[(s, c, *row) for (s, c), row in self.channels.items() if s in wanted],
            customer_units=[
                (s, c, u) for (s, c), u in self.customer_units.items() if s in limited and u
            ],
        )

    def _owned(self, shard_id: int, pinned_only: bool = False) -> list[str]:
        default = None if pinned_only else shard_id  # a dedicated shard: pinned SKUs only
        return [
            s
            for s, o in self.owner.items()
            if o == shard_id and self.pins.get(s, default) == shard_id
        ]

    async def load_shard(
        self, shard_id: int, epoch: int, *, pinned_only: bool = False
    ) -> ShardState:
        return self._state(self._owned(shard_id, pinned_only))

    async def reload_skus(
        self, shard_id: int, skus: list[str], *, pinned_only: bool = False
    ) -> ShardState:
        owned = set(self._owned(shard_id, pinned_only))
        return self._state([s for s in skus if s in owned])

    async def peek_skus(self, skus: list[str]) -> dict[str, int | None]:
        return {s: self.pins.get(s) for s in skus if s in self.skus}

    async def claim_skus(
        self, shard_id: int, epoch: int, pins: Mapping[str, int | None]
    ) -> ShardState:
        self._check(shard_id, epoch)
        still = [s for s in pins if self.pins.get(s) == pins[s]]  # a pin moved since: left out
        for s in still:
            self.owner[s] = shard_id
        return self._state(still)

    async def bought_units(self, skus: list[str]) -> dict[str, dict[str, int]]:
        bought: dict[str, dict[str, int]] = {}
        for r in self.reservations.values():
            if r.sku in skus and r.status == "committed":
                units = bought.setdefault(r.sku, {})
                units[r.customer_id] = units.get(r.customer_id, 0) + r.qty
        return bought

    async def lookup_results(self, request_ids: list[str]) -> dict[str, WireOutcome]:
        wanted = set(request_ids)
        rows: list[tuple[Any, ...]] = [
            (rid, *[None] * 14) for rid in request_ids if rid in self.collisions
        ]
        for batch_id in sorted({self.requests[r] for r in wanted if r in self.requests}):
            for e in self.batches[batch_id - 1].entries:
                if e[1] in wanted:
                    padded = (*e, None, None, None, None, None)[:13]
                    r = self.reservations.get(e[3]) if e[3] else None
                    where = (
                        (r.cart_id, r.customer_id, r.order_id, r.channel)
                        if r
                        else (None, None, None, None)
                    )
                    rows.append((e[1], e[0], e[2], e[3], e[4], e[6], e[7], *padded[8:], *where))
        return answers(rows)

    def _check(self, shard_id: int, epoch: int) -> None:
        if self.epochs.get(shard_id) != epoch:
            raise StaleEpoch(shard_id, epoch, self.epochs.get(shard_id, -1))

    async def write_batch(self, batch: BatchWrite) -> None:
        if self.fail_writes:
            self.fail_writes -= 1
            raise Unavailable("injected write failure")
        self._check(batch.shard_id, batch.epoch)
        closed = {c: self.carts[c] for c in batch.carts if self.carts.get(c, "open") != "open"}
        if closed:
            raise BatchRefused(closed)
        if any(self.owner.get(c.sku) != batch.shard_id for c in batch.counters):
            raise BatchRefused(moved=True)
        if any(rid in self.requests or rid in self.collisions for rid in batch.request_ids):
            raise BatchRefused(duplicate=True)
        for c in batch.counters:
            assert c.on_hand - c.reserved - c.sold >= 0, c
            self.skus[c.sku] = c
        for r in batch.created:
            assert r[R_ID] not in self.reservations, "inserted twice"
            self.reservations[r[R_ID]] = reservation_view(r)
        for r in batch.changed:
            assert r[R_ID] in self.reservations, "updated without a row"
            self.reservations[r[R_ID]] = reservation_view(r)
        for key in [k for k in self.customer_units if k[0] in batch.customers_reset]:
            del self.customer_units[key]
        for sku, customer, units in batch.customer_units:
            self.customer_units[(sku, customer)] = units
        for sku, channel, *row in batch.channels:
            self.channels[(sku, channel)] = tuple(row)
        self.batches.append(copy.copy(batch))
        for rid in batch.request_ids:
            self.requests[rid] = len(self.batches)
        self.outbox.append((len(self.batches), [c.sku for c in batch.counters]))
        self.writes += 1


def _held(r: ReservationView) -> tuple[Any, ...]:
    """A reservations row as the shard loads it: a shop hold has no channel element."""
    out = (RESERVATION, *(getattr(r, f) for f in r.__slots__))
    return out if r.channel is not None else out[:-1]


class FakeShopStore:
    """ShopRepository in memory (shop.ports.CartStore and OrderStore), over the engine's own
    tables in a FakeShardRepository, as in PostgreSQL: a cart's status is ``engine.carts``
    (the engine's add fence reads it) and a cart's lines are the engine's reservations.

    ``captures`` is payment_captures (FakePaymentsStore writes it); ``offers`` is
    offer_redemptions (code -> order id); ``queue`` is payment_queue (order -> [next_at,
    tries]: FakePaymentsStore's, an order's move may empty it). Edits of a cart and its
    checkout take one lock (the real cart_for_edit shares its lock between edits: here they
    queue)."""

    def __init__(self, engine: FakeShardRepository, clock: ManualClock) -> None:
        self.engine = engine
        self.clock = clock
        self.headers: dict[str, Cart] = {}
        self.orders: dict[str, Order] = {}
        self.keys: dict[tuple[str, str], str] = {}  # (customer, idempotency key) -> order
        self.events: list[tuple[str, str]] = []  # order_events: (order, status)
        self.captures: dict[str, tuple[str, str]] = {}
        self.offers: dict[str, str] = {}
        self.queue: dict[str, list[float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # -- carts ---------------------------------------------------------------------------------

    async def create_cart(self, cart_id: str, customer_id: str) -> Cart:
        self.headers.setdefault(cart_id, Cart(cart_id, customer_id, "open", self.clock.now(), None))
        header = await self.cart_header(cart_id)
        assert header is not None
        return header

    async def cart_header(self, cart_id: str) -> Cart | None:
        header = self.headers.get(cart_id)
        if header is None:
            return None
        return replace(header, status=self.engine.carts.get(cart_id, "open"))

    async def cart(self, cart_id: str) -> Cart | None:
        header = await self.cart_header(cart_id)
        if header is None:
            return None
        lines = tuple(
            CartLine(r.reservation_id, r.sku, r.qty, r.status, r.expires_at)
            for r in self.engine.reservations.values()
            if r.cart_id == cart_id and r.status != "committed"
        )
        return replace(header, lines=lines)

    @contextlib.asynccontextmanager
    async def cart_for_edit(self, cart_id: str) -> AsyncIterator[tuple[Cart, str | None] | None]:
        async with self._lock(cart_id):
            cart = await self.cart(cart_id)
            if cart is None:
                yield None
                return
            order = self.orders.get(cart.order_id or "")
            yield cart, None if order is None else order.status

    async def set_cart_status(self, cart_id: str, status: str, order_id: str | None) -> None:
        self.engine.carts[cart_id] = status
        self.headers[cart_id] = replace(self.headers[cart_id], order_id=order_id)

    def _lock(self, cart_id: str) -> asyncio.Lock:
        return self._locks.setdefault(cart_id, asyncio.Lock())

    # -- orders --------------------------------------------------------------------------------

    async def create_order(self, order: Order, idempotency_key: str) -> tuple[Order, bool]:
        first = self.keys.get((order.customer_id, idempotency_key))
        if first is not None:
            return self.orders[first], False
        if any(
            o.cart_id == order.cart_id and o.status in st.IN_FLIGHT | {st.PAID}
            for o in self.orders.values()
        ):
            raise Conflict(f"cart {order.cart_id} is already being checked out")
        async with self._lock(order.cart_id):  # checks first: a refusal changes nothing
            self._check_cart(order)
            if order.offer_code and order.offer_code in self.offers:
                raise OfferInvalid("this code was already used")
            if order.offer_code:
                self.offers[order.offer_code] = order.order_id
            self.engine.carts[order.cart_id] = "checked_out"
            self.headers[order.cart_id] = replace(
                self.headers[order.cart_id], order_id=order.order_id
            )
            self.keys[(order.customer_id, idempotency_key)] = order.order_id
            self.orders[order.order_id] = order
            self.events.append((order.order_id, order.status))
        return order, True

    def _check_cart(self, order: Order) -> None:
        """ShopRepository._close_cart's refusals."""
        if self.engine.carts.get(order.cart_id, "open") != "open":
            raise Conflict(f"cart {order.cart_id} is already being checked out")
        held = self.engine.reservations
        if any(
            ln.reservation_id not in held
            or (held[ln.reservation_id].status, held[ln.reservation_id].qty) != ("held", ln.qty)
            for ln in order.lines
        ):
            raise Conflict(
                f"cart {order.cart_id} changed while it was being checked out: look at it again"
            )
        named = {ln.reservation_id for ln in order.lines}
        if any(
            r.cart_id == order.cart_id
            and r.status == "held"
            and r.expires_at > self.clock.now()
            and r.reservation_id not in named
            for r in held.values()
        ):
            raise Conflict("items were added to the cart during checkout: review it and pay again")

    async def order(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    async def update_order(
        self,
        order_id: str,
        status: str,
        *,
        from_statuses: frozenset[str],
        detail: dict[str, Any] | None = None,
        reopen_cart: bool = False,
        unless_captured: bool = False,
        close_cart: bool = False,
        dequeue: bool = False,
        **fields: Any,
    ) -> bool:
        o = self.orders[order_id]
        if close_cart:
            await self.set_cart_status(o.cart_id, "checked_out", order_id)
        if dequeue:
            self.queue.pop(order_id, None)
        if o.status not in from_statuses or (unless_captured and order_id in self.captures):
            return False
        self.orders[order_id] = replace(o, status=status, updated_at=self.clock.now(), **fields)
        if status in (st.FAILED, st.CANCELLED) or reopen_cart:
            self.offers = {c: oid for c, oid in self.offers.items() if oid != order_id}
            if self.headers[o.cart_id].order_id == order_id:
                await self.set_cart_status(o.cart_id, "open", None)
        self.events.append((order_id, status))
        return True

    async def reservation_state(self, reservation_id: str) -> tuple[str, str | None] | None:
        r = self.engine.reservations.get(reservation_id)
        return None if r is None else (r.status, r.order_id)

    async def replace_line(self, order_id: str, old: str, new: str) -> None:
        o = self.orders[order_id]
        lines = tuple(
            replace(ln, reservation_id=new) if ln.reservation_id == old else ln for ln in o.lines
        )
        self.orders[order_id] = replace(o, lines=lines)

    def statuses(self, order_id: str) -> list[str]:
        """The order's history, as its order_events rows."""
        return [status for oid, status in self.events if oid == order_id]


class FakePaymentsStore:
    """PaymentsRepository in memory: the retry queue (order -> [next_at, tries]), captures
    (claimed only while the order is payable, as in PostgreSQL), refunds, velocity signals
    and the suspicious-activity log."""

    def __init__(self, shop: FakeShopStore) -> None:
        self.shop = shop
        self.queue = shop.queue
        self.refunds: dict[str, tuple[str, int]] = {}  # key -> (intent, amount)
        self.signals: list[tuple[float, str, str | None, str | None]] = []
        self.suspicions: list[tuple[str, str | None, dict[str, Any]]] = []
        self.attempts: list[Attempt] = []
        self.deliveries: set[str] = set()  # webhook event ids seen
        self.disputes: dict[str, str | None] = {}  # dispute id -> order id

    async def schedule(
        self,
        order_id: str,
        after_s: float,
        error: str | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        if only_if_absent and order_id in self.queue:
            return
        tries = self.queue[order_id][1] if order_id in self.queue else 0
        self.queue[order_id] = [self.shop.clock.now() + after_s, tries]

    async def done(self, order_id: str) -> None:
        self.queue.pop(order_id, None)

    async def start_attempt(self, order_id: str, pay_within_s: float, queue_after_s: float) -> int:
        o = self.shop.orders[order_id]
        pay_by = o.pay_by or self.shop.clock.now() + pay_within_s
        self.shop.orders[order_id] = replace(o, attempts=o.attempts + 1, pay_by=pay_by)
        await self.schedule(order_id, queue_after_s, only_if_absent=True)
        return o.attempts + 1

    async def queued(self, order_id: str) -> tuple[int, float] | None:
        row = self.queue.get(order_id)
        return None if row is None else (int(row[1]), row[0])

    async def claim_due(
        self, limit: int, lease_s: float, *, at: float | None = None
    ) -> list[tuple[str, int]]:
        now = self.shop.clock.now() if at is None else at
        due = sorted((row[0], oid) for oid, row in self.queue.items() if row[0] <= now)[:limit]
        for _, oid in due:
            self.queue[oid] = [self.shop.clock.now() + lease_s, self.queue[oid][1] + 1]
        return [(oid, int(self.queue[oid][1])) for _, oid in due]

    async def enqueue_stale(self, older_than_s: float, limit: int = 500) -> int:
        stale = [
            o.order_id
            for o in self.shop.orders.values()
            if o.status in st.PAYABLE
            and o.order_id not in self.queue
            and o.updated_at < self.shop.clock.now() - older_than_s
        ][:limit]
        for oid in stale:
            self.queue[oid] = [self.shop.clock.now(), 0]
        return len(stale)

    async def open_attempts(self, older_than_s: float, limit: int = 100) -> list[Attempt]:
        return []  # FakeGateway keeps no attempt records: nothing is ever stray

    async def attempts_of(self, order_id: str) -> list[Attempt]:
        return [a for a in self.attempts if a.order_id == order_id]

    async def by_intent(self, intent_id: str) -> Attempt | None:
        return next((a for a in self.attempts if a.intent_id == intent_id), None)

    async def claim_capture(
        self, order_id: str, gateway: str, intent_id: str
    ) -> tuple[str, str] | None:
        order = self.shop.orders.get(order_id)
        in_time = order is not None and (
            order.pay_by is None or order.pay_by > self.shop.clock.now()
        )
        if order is not None and order.status in st.PAYABLE and in_time:
            self.shop.captures.setdefault(order_id, (gateway, intent_id))
        return self.shop.captures.get(order_id)

    async def captured(self, order_id: str) -> tuple[str, str] | None:
        return self.shop.captures.get(order_id)

    async def record_refund(
        self,
        key: str,
        gateway: str,
        intent_id: str,
        amount_cents: int,
        status: str,
        refund_id: str | None = None,
    ) -> None:
        self.refunds[key] = (intent_id, amount_cents)

    async def refunded_cents(self, intent_id: str) -> int:
        return sum(amount for ref, amount in self.refunds.values() if ref == intent_id)

    async def add_signal(
        self, order_id: str, customer_id: str, fingerprint: str | None, client_ip: str | None
    ) -> None:
        self.signals.append((self.shop.clock.now(), customer_id, fingerprint, client_ip))

    async def velocity(
        self, window_s: float, customer_id: str, fingerprint: str | None, client_ip: str | None
    ) -> dict[str, int]:
        recent = [s for s in self.signals if s[0] > self.shop.clock.now() - window_s]
        return {
            "customer": sum(s[1] == customer_id for s in recent),
            "fingerprint": sum(fingerprint is not None and s[2] == fingerprint for s in recent),
            "ip": sum(client_ip is not None and s[3] == client_ip for s in recent),
        }

    async def suspicious(
        self, kind: str, order_id: str | None, customer_id: str | None, detail: dict[str, Any]
    ) -> None:
        self.suspicions.append((kind, order_id, detail))

    async def suspicious_of(self, order_id: str) -> list[tuple[str, dict[str, Any]]]:
        return [(kind, detail) for kind, oid, detail in self.suspicions if oid == order_id]

    async def first_delivery(
        self, event_id: str, account: str, type_: str, object_id: str | None
    ) -> bool:
        first = event_id not in self.deliveries
        self.deliveries.add(event_id)
        return first

    async def forget_delivery(self, event_id: str) -> None:
        self.deliveries.discard(event_id)

    async def dispute(
        self,
        dispute_id: str,
        account: str,
        *,
        charge_id: str | None,
        intent_id: str | None,
        order_id: str | None,
        amount_cents: int | None,
        reason: str | None,
        status: str | None,
    ) -> None:
        self.disputes[dispute_id] = order_id

    def kinds(self, order_id: str) -> list[str]:
        return [kind for kind, oid, _ in self.suspicions if oid == order_id]


class FakeGateway:
    """A payment gateway that answers as told and, like a real one, once per idempotency key:
    a retry under a key it answered gets that answer, never a second charge.

    ``answer``: succeeded, declined, requires_action, or down (raises Unavailable);
    ``lose_answer``: the next charge goes through but its answer is lost (Unavailable);
    ``gate``: while set, a charge waits on it (the test acts while it is in flight);
    ``attempts``: where it records each answered attempt, as StripeGateway records them."""

    name = "fake"

    def __init__(self, answer: str = "succeeded", attempts: list[Attempt] | None = None) -> None:
        self.answer = answer
        self.attempts = [] if attempts is None else attempts
        self.lose_answer = False
        self.gate: asyncio.Event | None = None
        self.calls: list[str] = []  # every charge call's idempotency key
        self.results: dict[str, ChargeResult] = {}
        self.refunds: dict[str, RefundResult] = {}

    async def charge(self, req: ChargeRequest) -> ChargeResult:
        self.calls.append(req.idempotency_key)
        if self.gate is not None:
            await self.gate.wait()
        seen = self.results.get(req.idempotency_key)
        if seen is not None:
            return seen
        if self.answer == "down":
            raise Unavailable("fake gateway down")
        ref = f"pi_{req.order_id}_{req.attempt}"
        codes = {"declined": "card_declined", "requires_action": "authentication_required"}
        result = ChargeResult(self.answer, self.name, ref, codes.get(self.answer, ""))  # type: ignore[arg-type]
        self.results[req.idempotency_key] = result
        self.attempts.append(
            Attempt(req.order_id, req.attempt, self.name, ref, result.status, None, None, None)
        )
        if self.lose_answer:
            self.lose_answer = False
            raise Unavailable("the gateway's answer was lost")
        return result

    def confirm(self, idempotency_key: str, status: str = "succeeded") -> ChargeResult:
        """The customer's bank answered (3-D Secure): the charge under the key is now this."""
        result = replace(self.results[idempotency_key], status=status, code="")  # type: ignore[arg-type]
        self.results[idempotency_key] = result
        return result

    async def refund(
        self, payment_ref: str, amount_cents: int, idempotency_key: str
    ) -> RefundResult:
        seen = self.refunds.get(idempotency_key)
        if seen is None:
            seen = RefundResult(self.name, f"re_{idempotency_key}", amount_cents)
            self.refunds[idempotency_key] = seen
        return seen

    @property
    def charged(self) -> int:
        """Charges that went through (one per key, whatever the retries)."""
        return sum(r.status == "succeeded" for r in self.results.values())


class FakePrices:
    """The catalogue's prices (shop.ports.Prices); ``before`` runs first, so a test can act
    between checkout reading the cart and creating the order."""

    def __init__(self, prices: dict[str, PriceInfo]) -> None:
        self.prices = prices
        self.before: Callable[[], Any] | None = None

    async def price_of(self, skus: list[str]) -> dict[str, PriceInfo]:
        if self.before is not None:
            before, self.before = self.before, None
            await before()
        return {s: self.prices[s] for s in skus if s in self.prices}


class RecordingEvents:
    """Order events as published (shop.ports.OrderEvents)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, dict[str, Any]]] = []

    async def publish(self, order_id: str, status: str, detail: dict[str, Any]) -> None:
        self.published.append((order_id, status, detail))


class FakeOffers:
    """A poll's offer codes (checkout.Offers): ``code`` takes ``cents`` off; others refused."""

    def __init__(self, code: str, cents: int) -> None:
        self.code = code
        self.cents = cents

    async def discount(
        self, customer_id: str, code: str, lines: Sequence[OrderLine], now: float
    ) -> int:
        if code != self.code:
            raise OfferInvalid("no such offer")
        return self.cents
