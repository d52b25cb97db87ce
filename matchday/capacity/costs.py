"""From what one measured window saw to the cost of one request (pure arithmetic).

A window brackets one phase of ``measure``: CPU seconds per process role (from
``matchday.ops.cpu_roles``), PostgreSQL write transactions (the next transaction id moves
only for transactions that write) and WAL bytes, and Redis commands. The idle window, taken
first with no traffic, gives each role's burn per second; a phase's cost is what it used
beyond that, divided by the requests it answered as expected.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from matchday.capacity.classes import component, reachable
from matchday.capacity.profile import ClassCost, Idle, Latency, RatePoint
from matchday.capacity.scaling import MIN_SPREAD

# Each window reads Redis's counters once, with one INFO command of its own.
OWN_REDIS_COMMANDS = 1
# The second rate's phase keeps the stack under this share of the machine's cores, idle burn
# included: past it, it measures the machine's run queue, not a cost per request.
HIGH_LOAD = 0.75
# Linux accounts process CPU in clock ticks (USER_HZ, 100 a second): a role's net CPU
# under one tick in a window is indistinguishable from its idle burn.
TICK_S = 0.01


@dataclass(frozen=True)
class Window:
    seconds: float
    cpu_s: Mapping[str, float]  # role -> CPU seconds used in the window
    pg_write_xacts: float = 0.0
    pg_wal_bytes: float = 0.0
    redis_cmds: float = 0.0
    foreign_cores: float = 0.0  # the machine's busy CPU that was not ours
    steal_cores: float = 0.0
    notes: dict[str, float] = field(default_factory=dict)


def idle_of(*parts: Window) -> Idle:
    """The idle burn from one window, or from consecutive equal parts of it.

    CPU is each role's mean over the whole: the stack's idle work is steady or periodic, and
    the mean is what a phase pays for it. The datastores' counters are the median of the
    parts' rates: they rest near zero at idle, and a burst in one or two parts (autovacuum,
    an expiry sweep of an earlier run's holds, a checkpoint) is not a rate every phase pays.
    Taken whole, such a burst ate a whole phase's WAL and left a class's writes at zero.
    """
    if not parts or any(p.seconds <= 0 for p in parts):
        raise ValueError("an idle window has a duration")
    seconds = sum(p.seconds for p in parts)
    cpu: dict[str, float] = {}
    for p in parts:
        for role, v in p.cpu_s.items():
            cpu[role] = cpu.get(role, 0.0) + v

    def rate(of: Callable[[Window], float]) -> float:
        return max(0.0, statistics.median(of(p) / p.seconds for p in parts))

    return Idle(
        seconds=seconds,
        cores={r: round(v / seconds, 5) for r, v in cpu.items()},
        pg_write_xacts_per_s=rate(lambda p: p.pg_write_xacts),
        pg_wal_bytes_per_s=rate(lambda p: p.pg_wal_bytes),
        redis_cmds_per_s=rate(lambda p: p.redis_cmds - OWN_REDIS_COMMANDS),
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered) - 1e-9)))
    return ordered[rank - 1]


def net_per_request(total: float, idle_per_s: float, seconds: float, requests: int) -> float:
    """What ``requests`` cost beyond the idle rate, each; never below zero."""
    return max(0.0, total - idle_per_s * seconds) / requests


def class_cost(
    w: Window,
    idle: Idle,
    *,
    ok: int,
    errors: int,
    rate_per_s: float,
    latencies_ms: Sequence[float],
    cls: str | None = None,
    among: Sequence[str] = (),
) -> ClassCost:
    """The cost of one request of ``cls`` (roles it cannot reach are left out), or of a
    mixed phase's request: roles no class ``among`` its classes can reach are left out."""
    if ok <= 0:
        raise ValueError("no request of the phase was answered as expected")
    classes = (cls,) if cls is not None else tuple(among)
    cpu_us = {}
    for role, cpu in w.cpu_s.items():
        net = max(0.0, cpu - idle.cores.get(role, 0.0) * w.seconds)
        if net >= TICK_S and (not classes or any(reachable(c, role) for c in classes)):
            cpu_us[role] = round(net * 1e6 / ok, 2)
    return ClassCost(
        requests=ok,
        errors=errors,
        rate_per_s=rate_per_s,
        latency=Latency(
            mean_ms=round(sum(latencies_ms) / len(latencies_ms), 3) if latencies_ms else 0.0,
            p50_ms=round(percentile(latencies_ms, 50), 3),
            p99_ms=round(percentile(latencies_ms, 99), 3),
        ),
        cpu_us={r: v for r, v in sorted(cpu_us.items()) if v > 0},
        pg_write_xacts=round(
            net_per_request(w.pg_write_xacts, idle.pg_write_xacts_per_s, w.seconds, ok), 4
        ),
        pg_wal_bytes=round(
            net_per_request(w.pg_wal_bytes, idle.pg_wal_bytes_per_s, w.seconds, ok), 1
        ),
        redis_cmds=round(
            net_per_request(
                w.redis_cmds - OWN_REDIS_COMMANDS, idle.redis_cmds_per_s, w.seconds, ok
            ),
            3,
        ),
    )


def high_rate(light: ClassCost, asked: float, cores: float, idle: Idle) -> float | None:
    """The rate a class's second phase runs at: ``asked``, capped where the light phase's
    cost says the stack (and the probe) would take more than ``HIGH_LOAD`` of the machine
    on top of its idle burn; None when that cap leaves no second rate worth measuring (under
    ``MIN_SPREAD`` x the light phase's: a checkout that costs 80 ms on 2 cores)."""
    busy = sum(v for r, v in idle.cores.items() if component(r) is not None)
    us = sum(light.cpu_us.values())  # the shop's roles and the probe's own
    cap = (HIGH_LOAD * cores - busy) * 1e6 / us if us > 0 else asked
    rate = min(asked, cap)
    return rate if rate >= MIN_SPREAD * light.rate_per_s else None


def rate_point(cost: ClassCost) -> RatePoint:
    """A class's second phase, as the profile keeps it beside the first."""
    return RatePoint(
        requests=cost.requests,
        errors=cost.errors,
        rate_per_s=cost.rate_per_s,
        cpu_us=cost.cpu_us,
        pg_write_xacts=cost.pg_write_xacts,
        pg_wal_bytes=cost.pg_wal_bytes,
        redis_cmds=cost.redis_cmds,
    )
