"""The business metrics, declared once, recorded without importing Ray.

``SPECS`` is the single list of what matchday measures: name, kind, description, tag keys
(and buckets for histograms). Core code records through the small :class:`Metrics`
protocol; the default is :data:`NOOP`, so unit tests and the CLI pay nothing. On Ray,
``actors/metrics.py`` implements the protocol with ``ray.util.metrics``, which Ray exports on
each node's Prometheus endpoint as ``ray_<name>`` (counters as ``ray_<name>_total``,
histograms as ``_bucket``/``_sum``/``_count``). The dashboard, the alert rules and their
test all read the exported names from :func:`exported_names`, so a renamed metric fails a
test instead of silently emptying a Grafana panel.

Tag values must come from small sets (a shard id, an error code, a gateway): Prometheus
keeps one series per combination. The only per-SKU series is the pinned-stock gauge, and
only operators pin SKUs (a handful at a time).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Literal, Protocol

from matchday.inventory.wire import (
    CHANNEL_RESERVE,
    ERROR,
    EXPIRE,
    KIND_NAMES,
    RESERVATION,
    RESERVE,
    WireMutation,
    WireOutcome,
    kind_name,
)

Kind = Literal["counter", "gauge", "histogram"]

# Ray prefixes every application metric with this namespace when it exports it.
RAY_PREFIX = "ray_"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    kind: Kind
    description: str
    tag_keys: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()

    def exported(self) -> tuple[str, ...]:
        """The series names Prometheus sees for this metric on Ray's endpoint."""
        base = RAY_PREFIX + self.name
        if self.kind == "counter":
            return (base + "_total",)
        if self.kind == "histogram":
            return (base + "_bucket", base + "_sum", base + "_count")
        return (base,)


RESERVATIONS = "matchday_reservations"
OVERSELL_REFUSED = "matchday_oversell_refused"
SELLOUTS = "matchday_sellouts"
EXPIRIES = "matchday_expiries"
MUTATIONS = "matchday_mutations"
PINNED_AVAILABLE = "matchday_pinned_available"
SHARD_STARTS = "matchday_shard_starts"
CHECKOUT_LATENCY = "matchday_checkout_latency_seconds"
PAYMENTS = "matchday_payments"
FAILOVERS = "matchday_payment_failovers"
PAYMENT_QUEUE = "matchday_payment_queue_depth"
PAYMENTS_OVERDUE = "matchday_payments_overdue"
ORDERS_UNPAID = "matchday_orders_unpaid_recent"
LATE_PAYMENTS = "matchday_late_payments_recent"
OUTBOX_BACKLOG = "matchday_outbox_backlog"
CATALOG_CACHE = "matchday_catalog_cache"
EMBEDDED_RESTARTS = "matchday_embedded_restarts"
EMBEDDED_UP = "matchday_embedded_up"
SUPPLIER_MESSAGES = "matchday_supplier_messages"
SUPPLIER_LINES = "matchday_supplier_lines"
SUPPLIER_PULLS = "matchday_supplier_pulls"
SUPPLIER_BREAKER_OPEN = "matchday_supplier_breaker_open"
SUPPLIER_SYNCS = "matchday_supplier_syncs"
SUPPLIER_SYNC_PROGRESS = "matchday_supplier_sync_progress"
SUPPLIER_SHOP_LOAD = "matchday_supplier_shop_load"
WR_TICKETS = "matchday_waitingroom_tickets"
WR_ADMITTED = "matchday_waitingroom_admitted"
WR_WAIT = "matchday_waitingroom_wait_seconds"
WR_QUEUE = "matchday_waitingroom_queue_length"
WR_GATE_REFUSED = "matchday_waitingroom_gate_refused"
WR_AUTO = "matchday_waitingroom_auto_drops"
# A fan's wait in a drop's queue: seconds to an hour.
WAIT_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

# Checkout waits on a gateway: a card payment is 0.3-3 s at Stripe, so the buckets reach
# 10 s (the Stripe timeout) and are fine below 0.1 s, where the test gateway answers.
CHECKOUT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

SPECS: tuple[MetricSpec, ...] = (
    MetricSpec(
        RESERVATIONS,
        "counter",
        "Reserve requests a shard answered, by outcome (ok, refused) and error code.",
        ("shard", "outcome", "code"),
    ),
    MetricSpec(
        OVERSELL_REFUSED,
        "counter",
        "Mutations refused because they asked for more units than were available.",
        ("shard",),
    ),
    MetricSpec(SELLOUTS, "counter", "SKUs whose available units reached zero.", ("shard",)),
    MetricSpec(EXPIRIES, "counter", "Reservations released by their expiry timer.", ("shard",)),
    MetricSpec(
        MUTATIONS,
        "counter",
        "Every mutation a shard answered, by kind and code (ok or the error code).",
        ("shard", "kind", "code"),
    ),
    MetricSpec(
        PINNED_AVAILABLE,
        "gauge",
        "Available units of each SKU pinned to a dedicated shard.",
        ("shard", "sku"),
    ),
    MetricSpec(
        SHARD_STARTS,
        "counter",
        "Inventory shard process starts; more than one series per shard means a restart.",
        ("shard",),
    ),
    MetricSpec(
        CHECKOUT_LATENCY,
        "histogram",
        "Time to answer a checkout (cart to order, payment included), by resulting status.",
        ("status",),
        CHECKOUT_BUCKETS,
    ),
    MetricSpec(
        PAYMENTS,
        "counter",
        "Charge attempts per gateway and region, by outcome (succeeded, declined, "
        "requires_action, unavailable, skipped).",
        ("gateway", "region", "outcome"),
    ),
    MetricSpec(
        FAILOVERS,
        "counter",
        "Charges moved from this gateway to the next because it was unavailable.",
        ("gateway",),
    ),
    MetricSpec(PAYMENT_QUEUE, "gauge", "Orders waiting in the payment retry queue."),
    # The next three are read from PostgreSQL by the payments worker's sampler, so they count
    # what every process did (checkout replicas, webhooks, the worker), restarts included.
    MetricSpec(
        PAYMENTS_OVERDUE,
        "gauge",
        "Orders still in flight more than a minute past their payment deadline (should be 0:"
        " the payments worker ends them at the deadline).",
    ),
    MetricSpec(
        ORDERS_UNPAID,
        "gauge",
        "Orders that ended unpaid in the last hour, by code: payment_timeout (not confirmed"
        " by the deadline), hold_lost (units gone before a charge), sold_out_refunded and"
        " partly_refunded (paid for units no longer held, refunded).",
        ("code",),
    ),
    MetricSpec(
        LATE_PAYMENTS,
        "gauge",
        "Payments voided in the last hour because their order could not take them, by"
        " suspicious-activity kind (late authorisation cancelled, late or duplicate charge"
        " refunded, sold out refunded).",
        ("kind",),
    ),
    MetricSpec(OUTBOX_BACKLOG, "gauge", "Stock events committed but not yet published."),
    MetricSpec(
        CATALOG_CACHE,
        "counter",
        "Catalogue reads answered from the Redis cache (hit) or from PostgreSQL (miss).",
        ("result",),
    ),
    MetricSpec(
        EMBEDDED_RESTARTS,
        "counter",
        "Restarts of an embedded server (postgres, redis) by `matchday run` after it died.",
        ("server",),
    ),
    MetricSpec(
        EMBEDDED_UP,
        "gauge",
        "1 while `matchday run` sees its embedded server (postgres, redis) running, else 0.",
        ("server",),
    ),
    # Supplier feeds (ADR 0025). Supplier ids are a handful an operator creates, like pins.
    MetricSpec(
        SUPPLIER_MESSAGES,
        "counter",
        "Pushed supplier messages by outcome: ok, replayed (a retry got its first answer), or"
        " the refusal's code (invalid_signature, invalid_feed, conflict, ...).",
        ("supplier", "outcome"),
    ),
    MetricSpec(
        SUPPLIER_LINES,
        "counter",
        "Supplier lines (pushed, pulled, bulk) by status (applied, unchanged, rejected) and"
        " the rejection's reason (unmapped, unknown_sku, stale, an engine error code).",
        ("supplier", "status", "reason"),
    ),
    MetricSpec(
        SUPPLIER_PULLS,
        "counter",
        "Scheduled feed pulls by outcome: changed (queued a sync), not_modified, failed,"
        " skipped (the supplier's circuit breaker is open), rejected (a malformed feed).",
        ("supplier", "outcome"),
    ),
    MetricSpec(
        SUPPLIER_BREAKER_OPEN,
        "gauge",
        "1 while a supplier feed's circuit breaker is open (pulls skipped), else 0.",
        ("supplier",),
    ),
    MetricSpec(
        SUPPLIER_SYNCS,
        "counter",
        "Bulk syncs that ended, by status (done, cancelled, rejected).",
        ("supplier", "status"),
    ),
    MetricSpec(
        SUPPLIER_SYNC_PROGRESS,
        "gauge",
        "Share of the running bulk sync's lines with an outcome (0-1), per supplier.",
        ("supplier",),
    ),
    MetricSpec(
        SUPPLIER_SHOP_LOAD,
        "gauge",
        "Shoppers' engine mutations/s as the bulk-sync runner measures them (syncs wait while"
        " it is above the threshold).",
    ),
    # The waiting room (ADR 0026). Drop ids are tags: operators create a handful.
    MetricSpec(
        WR_TICKETS,
        "counter",
        "Tickets asked for in a drop's queue, by verdict: genuine, behind (pushed back as a"
        " likely bot) or refused (turned away as a bot).",
        ("verdict",),
    ),
    MetricSpec(WR_ADMITTED, "counter", "Fans admitted from a drop's queue.", ("drop",)),
    MetricSpec(
        WR_WAIT,
        "histogram",
        "Time from a fan's arrival in a drop's queue to its admission.",
        ("drop",),
        WAIT_BUCKETS,
    ),
    MetricSpec(
        WR_QUEUE,
        "gauge",
        "Fans waiting in a drop's queue, as last seen by this process.",
        ("drop",),
    ),
    MetricSpec(
        WR_GATE_REFUSED,
        "counter",
        "Adds and checkouts of a drop's SKUs refused for their pass, by code (pass_required,"
        " token_refused, token_expired, token_malformed).",
        ("code",),
    ),
    MetricSpec(
        WR_AUTO,
        "counter",
        "Automatic drops opened on a SKU whose adds outran the threshold, and closed when they"
        " fell back, by action (opened, closed); counted by the replica that made the change.",
        ("action",),
    ),
)

SPEC_BY_NAME: dict[str, MetricSpec] = {s.name: s for s in SPECS}


def exported_names() -> set[str]:
    return {name for spec in SPECS for name in spec.exported()}


class Metrics(Protocol):
    def inc(self, name: str, value: float = 1.0, tags: Mapping[str, str] | None = None) -> None:
        """Add ``value`` (> 0) to a counter."""

    def set(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        """Set a gauge."""

    def observe(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        """Record one observation in a histogram."""


class NoopMetrics:
    """The default recorder: records nothing, costs a method call."""

    def inc(self, name: str, value: float = 1.0, tags: Mapping[str, str] | None = None) -> None:
        return None

    def set(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        return None

    def observe(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        return None


NOOP: Metrics = NoopMetrics()

TagKey = tuple[tuple[str, str], ...]


def check(name: str, kind: Kind, tags: Mapping[str, str] | None) -> MetricSpec:
    """The spec of ``name``; raise if it is unknown, of another kind, or its tags differ.

    Ray raises on missing tag keys only when the metric is recorded, deep in a shard; this
    check lets a unit test catch the same mistake.
    """
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        raise KeyError(f"unknown metric {name!r}")
    if spec.kind != kind:
        raise TypeError(f"{name} is a {spec.kind}, not a {kind}")
    if set(tags or {}) != set(spec.tag_keys):
        raise ValueError(f"{name} takes tags {spec.tag_keys}, got {sorted(tags or {})}")
    return spec


class MemoryMetrics:
    """Keeps what is recorded, checked against ``SPECS``: for tests and ``matchday status``."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, TagKey], float] = {}
        self.gauges: dict[tuple[str, TagKey], float] = {}
        self.observations: dict[tuple[str, TagKey], list[float]] = {}

    def inc(self, name: str, value: float = 1.0, tags: Mapping[str, str] | None = None) -> None:
        check(name, "counter", tags)
        if value <= 0:
            raise ValueError("a counter only goes up")
        key = (name, _key(tags))
        self.counters[key] = self.counters.get(key, 0.0) + value

    def set(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        check(name, "gauge", tags)
        self.gauges[(name, _key(tags))] = value

    def observe(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        check(name, "histogram", tags)
        self.observations.setdefault((name, _key(tags)), []).append(value)

    def count(self, name: str, **tags: str) -> float:
        """The sum of ``name`` over every series whose tags include ``tags``."""
        want = set(tags.items())
        return sum(v for (n, k), v in self.counters.items() if n == name and want <= set(k))


def _key(tags: Mapping[str, str] | None) -> TagKey:
    return tuple(sorted((tags or {}).items()))


class DeltaExporter:
    """Turns cumulative in-memory counters (a router's ``counters``) into counter increments.

    Components that already count for their own ``stats()`` keep doing so; a sampler hands
    their totals here now and then, and only what grew since the last sample is recorded.
    A total that went down (the component was rebuilt) starts over from zero.
    """

    def __init__(self, metrics: Metrics, name: str) -> None:
        self.metrics = metrics
        self.name = name
        self._last: dict[TagKey, float] = {}

    def export(self, totals: Iterable[tuple[Mapping[str, str], float]]) -> None:
        for tags, total in totals:
            key = _key(tags)
            last = self._last.get(key, 0.0)
            grown = total - last if total >= last else total
            self._last[key] = total
            if grown > 0:
                self.metrics.inc(self.name, grown, tags)


# Mutation kinds that can lower a SKU's available units.
_TAKING_KINDS = frozenset({"reserve", "resize", "set_on_hand", "adjust", "channel_reserve"})
_TAKING = frozenset(k for k, name in enumerate(KIND_NAMES) if name in _TAKING_KINDS)
_first = itemgetter(0)


def record_batch(
    metrics: Metrics,
    shard_id: int,
    mutations: Sequence[WireMutation],
    outcomes: Sequence[WireOutcome],
    before: Mapping[str, int],
    after: Mapping[str, int],
) -> None:
    """Record one inventory batch: what it asked, what it answered, what sold out.

    Mutations and outcomes are the shard's wire tuples (``matchday.inventory.wire``), a
    malformed mutation included. ``before``/``after`` are the available units of the batch's
    SKUs around it (a SKU absent from ``before`` was loaded by the batch). Counts are summed
    per tag set first: a batch can carry hundreds of mutations and one record call each
    would cost more than the batch.
    """
    if len(mutations) != len(outcomes):
        raise ValueError("a batch has one outcome per mutation")
    shard = str(shard_id)
    if ERROR in map(_first, outcomes):
        took = _record_refusals(metrics, shard, mutations, outcomes)
    else:
        took = _record_applied(metrics, shard, mutations, outcomes)
    # Sold out here only if this batch took units (a refused reserve on an empty SKU is not
    # a sell-out, nor is a batch whose write failed); a SKU loaded by it has no "before".
    emptied = [s for s, now in after.items() if now == 0 and before.get(s, 1) > 0]
    if emptied:
        sold_out = len(set(emptied).intersection(took()))
        if sold_out:
            metrics.inc(SELLOUTS, sold_out, {"shard": shard})


def _record_applied(
    metrics: Metrics, shard: str, mutations: Sequence[WireMutation], outcomes: Sequence[WireOutcome]
) -> Callable[[], set[str]]:
    """A batch with no refusal, the hot path: every mutation was well formed and applied,
    so it is counted by kind at C speed (the loop of ``_record_refusals`` cost ~1 us per
    reserve of a shard's CPU at 64 callers)."""
    kinds = Counter(map(_first, mutations))
    for kind, n in kinds.items():
        metrics.inc(MUTATIONS, n, {"shard": shard, "kind": KIND_NAMES[kind], "code": "ok"})
    reserves = kinds.get(RESERVE, 0) + kinds.get(CHANNEL_RESERVE, 0)
    if reserves:
        metrics.inc(RESERVATIONS, reserves, {"shard": shard, "outcome": "ok", "code": "ok"})
    if EXPIRE in kinds:
        # An expiry that no longer applied answers the SKU's stock, not the reservation.
        expired = sum(
            1
            for m, o in zip(mutations, outcomes, strict=True)
            if m[0] == EXPIRE and o[0] == RESERVATION
        )
        if expired:
            metrics.inc(EXPIRIES, expired, {"shard": shard})
    return lambda: {m[2] for m in mutations if m[0] in _TAKING}


def _record_refusals(
    metrics: Metrics, shard: str, mutations: Sequence[WireMutation], outcomes: Sequence[WireOutcome]
) -> Callable[[], set[str]]:
    """A batch with a refusal or a malformed mutation: each is looked at."""
    by_kind: Counter[tuple[str, str]] = Counter()
    reserves: Counter[tuple[str, str]] = Counter()
    refused = expired = 0
    took: set[str] = set()  # SKUs whose available units this batch lowered
    for m, o in zip(mutations, outcomes, strict=True):
        kind = kind_name(m)
        code = o[1] if o[0] == ERROR else "ok"
        by_kind[(kind, code)] += 1
        if code == "ok" and kind in _TAKING_KINDS:
            took.add(m[2])
        if kind == "reserve" or kind == "channel_reserve":  # the shop's compare comes first
            reserves[("ok" if code == "ok" else "refused", code)] += 1
        if code == "out_of_stock":
            refused += 1
        # An expiry that no longer applied answers the SKU's stock, not the reservation.
        if kind == "expire" and o[0] == RESERVATION:
            expired += 1
    for (kind, code), n in by_kind.items():
        metrics.inc(MUTATIONS, n, {"shard": shard, "kind": kind, "code": code})
    for (outcome, code), n in reserves.items():
        metrics.inc(RESERVATIONS, n, {"shard": shard, "outcome": outcome, "code": code})
    if refused:
        metrics.inc(OVERSELL_REFUSED, refused, {"shard": shard})
    if expired:
        metrics.inc(EXPIRIES, expired, {"shard": shard})
    return lambda: took
