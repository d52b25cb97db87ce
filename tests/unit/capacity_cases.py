"""A cost profile with round numbers, so plans can be checked against sums done by hand."""

from __future__ import annotations

from typing import Any

from matchday.capacity import classes as k
from matchday.capacity.demand import Mix, Persona
from matchday.capacity.profile import SCHEMA, VERSION, Profile

# CPU microseconds per request, per role. Every class crosses the ingress (100 us).
COSTS: dict[str, dict[str, float]] = {
    k.BROWSE: {"haproxy": 100, "replica:catalog": 400, "redis": 50},
    k.PRODUCT: {"haproxy": 100, "replica:catalog": 500, "redis": 50},
    k.AVAILABILITY: {"haproxy": 100, "replica:catalog": 200, "redis": 50},
    k.SESSION: {"haproxy": 100, "replica:shop": 300, "redis": 50},
    k.CART: {"haproxy": 100, "replica:shop": 300, "postgres": 200},
    k.ADD: {"haproxy": 100, "replica:shop": 500, "shards": 200, "postgres": 300,
            "ray:raylet": 50, "ray:publisher": 100},
    k.ADD_SOLD_OUT: {"haproxy": 100, "replica:shop": 400, "shards": 100},
    k.CART_VIEW: {"haproxy": 100, "replica:shop": 300, "postgres": 100},
    k.CHECKOUT: {"haproxy": 100, "replica:orders": 1000, "replica:orders/Payments": 200,
                 "shards": 300, "postgres": 1000, "ray:publisher": 100},
    k.ORDER_STATUS: {"haproxy": 100, "replica:orders": 300, "postgres": 100},
    k.POLL_VOTE: {"haproxy": 100, "replica:polls": 300, "redis": 100},
}  # fmt: skip
PG_XACTS = {k.CART: 1.0, k.ADD: 0.5, k.CHECKOUT: 2.0}
WAL_BYTES = {k.CART: 1000.0, k.ADD: 2000.0, k.CHECKOUT: 10000.0}
REDIS_CMDS = {k.BROWSE: 2.0, k.PRODUCT: 2.0, k.SESSION: 3.0, k.POLL_VOTE: 4.0}
LATENCY_MS = dict.fromkeys(k.CLASSES, 0.0)


def profile_data(**changes: Any) -> dict[str, Any]:
    classes = {
        c: {
            "requests": 100,
            "errors": 0,
            "rate_per_s": 20.0,
            "latency": {"mean_ms": LATENCY_MS[c], "p50_ms": LATENCY_MS[c], "p99_ms": 1.0},
            "cpu_us": dict(COSTS[c]),  # a copy: tests change it
            "pg_write_xacts": PG_XACTS.get(c, 0.0),
            "pg_wal_bytes": WAL_BYTES.get(c, 0.0),
            "redis_cmds": REDIS_CMDS.get(c, 0.0),
        }
        for c in k.CLASSES
    }
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "version": VERSION,
        "measured_at": "2026-12-02T10:00:00Z",
        "target": "http://127.0.0.1:8000",
        "phase_s": 10.0,
        "machine": {"cores": 2, "cpu_model": "test", "memory_bytes": 2**34, "platform": "linux"},
        "software": {
            "matchday": "0.1.0", "ray": "2.60.0", "python": "3.11.2",
            "settings": {"shards": 2, "dedicated_shards": 1, "ingress": "haproxy"},
        },
        # Ray burns 0.2 core idle on a node, the ingress nothing.
        "idle": {"seconds": 10.0, "cores": {"ray:gcs": 0.1, "ray:raylet": 0.1, "haproxy": 0.0,
                                            "postgres": 0.05},
                 "pg_write_xacts_per_s": 1.0, "pg_wal_bytes_per_s": 100.0,
                 "redis_cmds_per_s": 5.0},
        "contention": {"foreign_cores": 0.0, "steal_cores": 0.0},
        "classes": classes,
        # 1,000 reserves/s reached; 100 us of shard CPU each (a 10,000/s asymptote).
        "hot_shard": {"callers": 64, "reserves": 10000, "seconds": 10.0, "reserves_per_s": 1000.0,
                      "shard_cpu_us": 100.0, "pg_write_xacts": 0.02, "pg_wal_bytes": 500.0},
        # Ray's own: 512 MiB a node; a replica 256 MiB, a shard 128 MiB.
        "processes": {
            "count": {"ray:gcs": 1, "ray:raylet": 1, "replica:catalog": 1, "replica:shop": 1,
                      "shards": 3, "postgres": 10, "redis": 1},
            "rss_mb": {"ray:gcs": 256.0, "ray:raylet": 256.0, "replica:catalog": 256.0,
                       "replica:shop": 256.0, "replica:orders": 256.0,
                       "replica:orders/Payments": 256.0, "replica:polls": 256.0,
                       "shards": 128.0, "ray:publisher": 128.0, "ray:payments worker": 128.0,
                       "postgres": 16.0, "redis": 64.0},
        },
    }  # fmt: skip
    data.update(changes)
    return data


def profile(**changes: Any) -> Profile:
    return Profile.model_validate(profile_data(**changes))


# One persona, two seconds per loop (think 1-3 s, no latency): one browse per loop.
BROWSER = Persona("Browser", (1.0, 3.0), {k.BROWSE: 1.0}, {k.BROWSE: 1.0})
# A buyer: session, add, checkout per 4-second loop while the drop lasts; sold out, the add
# fails (409) and nothing is paid.
BUYER = Persona(
    "Buyer",
    (2.0, 6.0),
    {k.SESSION: 1.0, k.ADD: 1.0, k.CHECKOUT: 1.0},
    {k.SESSION: 1.0, k.ADD_SOLD_OUT: 1.0},
    hot_adds=(1.0, 1.0),
    hot_units=1.0,
)


def steady_mix(*weights: tuple[Persona, float]) -> Mix:
    return Mix("test", {p.name: w for p, w in weights}, {p.name: p for p, _ in weights})


def with_high(data: dict[str, Any], cls: str, rate: float, cpu_us: dict[str, float]) -> None:
    """Give ``cls`` in profile ``data`` a second measured rate (profile version 2)."""
    data["classes"][cls]["high"] = {
        "requests": 100, "errors": 0, "rate_per_s": rate, "cpu_us": cpu_us,
        "pg_write_xacts": PG_XACTS.get(cls, 0.0), "pg_wal_bytes": WAL_BYTES.get(cls, 0.0),
        "redis_cmds": REDIS_CMDS.get(cls, 0.0),
    }  # fmt: skip


def two_rate_profile() -> Profile:
    """Every class measured again at 50/s (2.5x its 20/s): the shop's replica cheaper per
    request (x0.64), the ingress dearer (x1.5: contention), the catalog's replica falling
    faster than 1/rate (x0.2, which the model refuses to follow past x0.4), the rest as
    before."""
    data = profile_data()
    for c in k.CLASSES:
        high = dict(COSTS[c])
        high["haproxy"] = 150.0
        if "replica:shop" in high:
            high["replica:shop"] *= 0.64
        if "replica:catalog" in high:
            high["replica:catalog"] *= 0.2
        with_high(data, c, 50.0, high)
    return Profile.model_validate(data)


# The hand mix's shares (``test_capacity_model.hand_demand``): browse 3,750/s, session, add
# and checkout 625/s each, of 5,625/s.
HAND_SHARES = {k.BROWSE: 2 / 3, k.SESSION: 1 / 9, k.ADD: 1 / 9, k.CHECKOUT: 1 / 9}
# The mix measured together: at 20/s the ingress dearer than the classes say (150 us against
# 100), Ray's GCS working (no class showed it); at 50/s the shop's replica x0.8 and
# PostgreSQL x1.5 (contention), the rest flat. The shards and the publisher are the batching
# roles: the plan keeps their classes' costs whatever the mix says.
MIX_LOW = {
    "haproxy": 150.0,
    "replica:shop": 200.0,
    "replica:catalog": 400.0,
    "postgres": 300.0,
    "shards": 80.0,
    "ray:publisher": 50.0,
    "ray:gcs": 30.0,
}
MIX_HIGH = {**MIX_LOW, "replica:shop": 160.0, "postgres": 450.0}  # fmt: skip


def with_mix(
    data: dict[str, Any], scenario: str, shares: dict[str, float],
    low: dict[str, float] | None = None, high: dict[str, float] | None = None,
) -> None:  # fmt: skip
    """Give profile ``data`` a mixed phase of ``scenario`` (version 3): at 20/s and 50/s, or
    at 20/s only when ``low`` is given without ``high``."""
    cost: dict[str, Any] = {
        "requests": 240, "errors": 0, "rate_per_s": 20.0,
        "latency": {"mean_ms": 5.0, "p50_ms": 5.0, "p99_ms": 20.0},
        "cpu_us": dict(low or MIX_LOW), "pg_write_xacts": 0.5, "pg_wal_bytes": 1000.0,
        "redis_cmds": 2.0,
    }  # fmt: skip
    if high is not None or low is None:
        cost["high"] = {**cost, "rate_per_s": 50.0, "cpu_us": dict(high or MIX_HIGH)}
        del cost["high"]["latency"]
    data.setdefault("mixes", {})[scenario] = {
        "think": 1.0,
        "stock": "in_stock",
        "shares": shares,
        "cost": cost,
    }


def mixed_profile() -> Profile:
    """``profile()`` with the hand mix ("test") measured together."""
    data = profile_data()
    with_mix(data, "test", HAND_SHARES)
    return Profile.model_validate(data)
