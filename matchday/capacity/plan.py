"""Demand + profile -> replicas, shards, nodes, PostgreSQL and Redis load, saturation order.

The model (ADR 0023): a component's load is the sum over classes of requests/s x its CPU per
request from the profile. Serve replicas, shards, the payments worker and the event
publisher are each one Python process, so one core is the most any one of them can use:
a pool of them needs ``ceil(cores / utilisation)`` processes. Nodes carry every process plus
what Ray and the ingress burn idle on each node. PostgreSQL and Redis are sized as one
primary of a stated size (Redis runs commands on one core). A component saturates when its
load reaches its capacity (100%); since load grows with the users, the component with the
least headroom (capacity / load at the peak) is the first to break, at peak x headroom users.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

from matchday.capacity import classes as k
from matchday.capacity.demand import Demand
from matchday.capacity.mixed import mixed_roles
from matchday.capacity.plan_model import (
    DeploymentPlan,
    EngineLoad,
    Limit,
    NodePlan,
    Options,
    Plan,
    ShardPlan,
    StoresPlan,
)
from matchday.capacity.profile import MixedCost, PlanInputError, Profile
from matchday.capacity.redis_busy import commands_per_s, cost_factor, fastest_phase
from matchday.capacity.scaling import rate_factors

# Autoscaling maxima (replicas, nodes) leave room for a crowd this much bigger than planned.
OVERSHOOT = 1.5
# A hot SKU gets a shard of its own once it alone would take this share of a shard's
# measured ceiling: beyond it, the SKUs hashed beside it would queue behind its batches.
PIN_SHARE = 0.2
# Dedicated shards kept free for the SKU nobody forecast (`matchday pin` moves it live).
SPARE_DEDICATED = 1
# Of a node's memory, what processes may use (the rest: kernel, page cache, spikes).
MEMORY_SHARE = 0.8
# A node must keep this many cores free after Ray's own idle burn to be worth a replica.
MIN_FREE_CORES = 0.5
# max_ongoing_requests = this x target_ongoing_requests: room for bursts before queueing.
ONGOING_BURST = 4


def batch_factor(profile: Profile, role: str, rate: float) -> float:
    """How much a group-committing role's light-load cost per request shrinks when one of
    its processes takes ``rate`` engine calls/s.

    Two points are measured: the add phase (``rate_per_s`` adds, each a batch of its own) and
    the hot-shard phase (``reserves_per_s``, large batches). Between them the cost follows
    the power law through both points: a shard's CPU goes mostly to waking up for a batch
    (Ray's actor call, the event loop, the commit), so its cores stay nearly flat as the
    rate grows and the cost per call falls (measured 2026-12-02: ~0.15 core at 40 adds/s
    and at 1,440 reserves/s alike). Below the add phase's rate nothing is shared (1.0);
    past the hot phase's, the hot phase's ratio holds.
    """
    light, hot = profile.classes[k.ADD], profile.hot_shard
    low, high = light.cpu_us.get(role, 0.0), hot.cpu_us.get(role, 0.0)
    if low <= 0 or high <= 0 or high >= low:
        return 1.0
    r_low, r_high = light.rate_per_s, hot.reserves_per_s
    if rate <= r_low:
        return 1.0
    if rate >= r_high or r_high <= r_low:
        return high / low
    return float((high / low) ** (math.log(rate / r_low) / math.log(r_high / r_low)))


def engine_rates(rates: Mapping[str, float], load: EngineLoad) -> tuple[float, float, float]:
    """(calls/s of one ring shard, adds/s of one hot SKU's shard, events/s of the publisher)."""
    adds = rates.get(k.ADD, 0.0) + rates.get(k.ADD_SOLD_OUT, 0.0)
    hot = min(load.hot_adds, adds)
    regular = adds - hot + rates.get(k.CHECKOUT, 0.0)
    events = rates.get(k.ADD, 0.0) + rates.get(k.CHECKOUT, 0.0)
    return regular / max(1, load.ring), hot / max(1, load.hot_skus), events


def batching(
    profile: Profile, rates: Mapping[str, float], load: EngineLoad
) -> dict[str, dict[str, float]]:
    """Per group-committing role, per class, the factor its light-load cost is scaled by."""
    per_ring, per_hot, events = engine_rates(rates, load)
    adds = rates.get(k.ADD, 0.0) + rates.get(k.ADD_SOLD_OUT, 0.0)
    hot_share = min(load.hot_adds, adds) / adds if adds > 0 else 0.0
    ring_f = batch_factor(profile, k.SHARDS, per_ring)
    hot_f = batch_factor(profile, k.SHARDS, per_hot)
    add_f = hot_share * hot_f + (1 - hot_share) * ring_f
    shards = {c: add_f if c in (k.ADD, k.ADD_SOLD_OUT) else ring_f for c in rates}
    publisher = dict.fromkeys(rates, batch_factor(profile, "ray:publisher", events))
    return {k.SHARDS: shards, "ray:publisher": publisher}


def cores_by_component(
    profile: Profile,
    rates: Mapping[str, float],
    load: EngineLoad,
    mixed: MixedCost | None = None,
) -> dict[str, float]:
    """Cores per component: each (class, role) light cost x its rate x a factor, the
    shards' and the publisher's from their batching, every other role's from the class's
    two measured rates (``matchday.capacity.scaling``; 1.0 in a one-rate profile). With
    ``mixed`` (the scenario's mix measured together), the roles it decides take their
    cores from it instead (``matchday.capacity.mixed``). Redis measured busy takes its
    factor from that phase at the commands/s it gets (``matchday.capacity.redis_busy``),
    whatever the mix says."""
    out: dict[str, float] = {}
    decided = mixed_roles(profile, mixed, rates) if mixed is not None else {}
    factor = {**rate_factors(profile, rates), **batching(profile, rates, load)}
    if profile.redis_busy is not None:
        decided.pop(k.REDIS, None)
        factor[k.REDIS] = dict.fromkeys(rates, cost_factor(profile, commands_per_s(profile, rates)))
    for cls, rate in rates.items():
        for role, us in profile.classes[cls].cpu_us.items():
            comp = k.component(role)
            if comp is not None and role not in decided:
                f = factor.get(role, {}).get(cls, 1.0)
                out[comp] = out.get(comp, 0.0) + rate * us * f / 1e6
    for role, cores in decided.items():
        comp = k.component(role)
        if comp is not None:
            out[comp] = out.get(comp, 0.0) + cores
    return out


def idle_per_process(profile: Profile, role: str) -> float:
    """Cores one process of ``role`` used with no traffic, in the measured stack."""
    n = profile.processes.count.get(role, 0)
    return profile.idle.cores.get(role, 0.0) / n if n > 0 else 0.0


def _per_node_overhead(profile: Profile) -> tuple[float, float]:
    """(cores, GiB) Ray and the ingress take on a node with no traffic."""
    fixed = (k.RAY, k.INGRESS)
    cores = sum(v for r, v in profile.idle.cores.items() if k.component(r) in fixed)
    mb = sum(
        profile.processes.count.get(r, 0) * mb
        for r, mb in profile.processes.rss_mb.items()
        if k.component(r) in fixed
    )
    return cores, mb / 1024


def _replicas(cores: float, utilisation: float) -> int:
    return max(1, math.ceil(cores / utilisation - 1e-9))


def plan_deployments(
    profile: Profile,
    d: Demand,
    cores: Mapping[str, float],
    utilisation: float,
    mixed: MixedCost | None = None,
) -> tuple[DeploymentPlan, ...]:
    base = cores_by_component(profile, d.at_baseline(), EngineLoad(0.0, 1, 1), mixed)
    peak_rates = d.at_peak()
    out = []
    for role in sorted(r for r in cores if r.startswith(k.REPLICA) and cores[r] > 0):
        served = {c: r for c, r in peak_rates.items() if profile.classes[c].cpu_us.get(role, 0) > 0}
        rate = sum(served.values())
        latency = sum(r * profile.classes[c].latency.mean_ms for c, r in served.items()) / rate
        at_peak = _replicas(cores[role], utilisation)
        per_replica = rate * utilisation / cores[role]  # requests/s one replica takes at U
        target = max(1, round(per_replica * latency / 1000))
        out.append(
            DeploymentPlan(
                role=role,
                rate_at_peak=rate,
                cores_at_peak=cores[role],
                replicas_at_peak=at_peak,
                min_replicas=min(at_peak, _replicas(base.get(role, 0.0), utilisation)),
                max_replicas=max(at_peak, math.ceil(at_peak * OVERSHOOT)),
                latency_ms=latency,
                target_ongoing=target,
                max_ongoing=ONGOING_BURST * target,
            )
        )
    return tuple(out)


def plan_shards(
    profile: Profile, d: Demand, cores: Mapping[str, float], opts: Options
) -> ShardPlan:
    if not opts.hot_skus:
        raise PlanInputError("name at least one hot SKU (--hot-skus)")
    ceiling = profile.hot_shard.reserves_per_s
    each = d.hot_adds_at_peak() / len(opts.hot_skus)
    hot = tuple((sku, each) for sku in opts.hot_skus)
    pins = tuple((sku, rate) for sku, rate in hot if rate > PIN_SHARE * ceiling)
    moved = sum(rate for _, rate in pins) * profile.hot_shard.shard_cpu_us / 1e6
    ring_cores = max(0.0, cores.get(k.SHARDS, 0.0) - moved)
    return ShardPlan(
        ring=_replicas(ring_cores, opts.utilisation),
        dedicated=len(pins) + SPARE_DEDICATED,
        ring_cores=ring_cores,
        pins=pins,
        hot=hot,
        ceiling_per_s=ceiling,
    )


def _rss_gib(profile: Profile, role: str) -> float:
    return profile.processes.rss_mb.get(role, 0.0) / 1024


def plan_nodes(
    profile: Profile,
    cores: Mapping[str, float],
    deployments: tuple[DeploymentPlan, ...],
    shards: ShardPlan,
    opts: Options,
) -> NodePlan:
    node, u = opts.node, opts.utilisation
    colocated = opts.stores.colocated
    over_cores, over_gib = _per_node_overhead(profile)
    stores = (k.POSTGRES, k.REDIS)
    need = sum(v for c, v in cores.items() if colocated or c not in stores)
    processes = [(d.role, d.replicas_at_peak) for d in deployments]
    processes += [(k.SHARDS, shards.ring + shards.dedicated), ("ray:publisher", 1)]
    processes += [(k.PAYMENTS_WORKER_ROLE, 1)]
    if colocated:
        processes += [(r, profile.processes.count.get(r, 1)) for r in stores]
    # Apps no class reaches (admin, webhooks, the storefront...) still run their replicas.
    planned = {r for r, _ in processes}
    processes += [
        (r, n)
        for r, n in profile.processes.count.items()
        if r.startswith(k.REPLICA) and r not in planned
    ]
    gib = sum(n * _rss_gib(profile, r) for r, n in processes)
    # Every process burns CPU with no traffic too (Serve's health checks and metrics, Ray's
    # core worker); the classes' costs are net of it, so it is counted here, per process.
    need += sum(n * idle_per_process(profile, r) for r, n in processes)
    free_cores = node.cores * u - over_cores
    free_gib = node.memory_gib * MEMORY_SHARE - over_gib
    biggest = max(_rss_gib(profile, r) for r, _ in processes)
    if free_cores < MIN_FREE_CORES or free_gib < biggest:
        raise PlanInputError(
            f"a node of {node.cores:g} cores and {node.memory_gib:g} GiB cannot host one replica:"
            f" at {u:.0%} utilisation Ray and the ingress leave {free_cores:.2f} cores (needs"
            f" {MIN_FREE_CORES}) and {free_gib:.2f} GiB (needs {biggest:.2f})"
        )
    at_peak = max(1, math.ceil(need / free_cores - 1e-9), math.ceil(gib / free_gib - 1e-9))
    if profile.software.settings.get("ingress") == "python":  # one proxy process per node
        at_peak = max(at_peak, _replicas(cores.get(k.INGRESS, 0.0), u))
    top = max(at_peak, math.ceil(at_peak * OVERSHOOT))
    if opts.fixed_nodes is not None:
        at_peak = top = opts.fixed_nodes
    # Pods start in minutes and a kick-off reaches its peak in one: keep the peak's nodes up.
    return NodePlan(at_peak, at_peak, top, need, gib, over_cores, over_gib)


def redis_measured_cmds_per_s(profile: Profile) -> float:
    """The most Redis commands/s any phase of ``profile`` sent (classes and mixes, both
    rates).

    Up to about this rate each command arrives alone and wakes Redis's event loop from
    ``epoll_wait`` (measured 2026-12-03: 28-190 us of Redis CPU per command, ~200 us per
    request plus ~25-30 us per command, flat from 20 to 50 requests/s; docs/capacity.md).
    Busier, one wakeup serves the commands of many clients, so the cost per command can only
    fall: without a busy-Redis phase, past this rate the plan's Redis cores are an upper
    bound and its saturation point a lower bound (``Limit.lower_bound``); with one, the cost
    follows it from this rate on (``matchday.capacity.redis_busy``).
    """
    return fastest_phase(profile)


def plan_stores(
    profile: Profile, rates: Mapping[str, float], cores: Mapping[str, float], opts: Options
) -> StoresPlan:
    xacts = sum(r * profile.classes[c].pg_write_xacts for c, r in rates.items())
    wal = sum(r * profile.classes[c].pg_wal_bytes for c, r in rates.items()) / 1e6
    redis = commands_per_s(profile, rates)
    pg_cores = cores.get(k.POSTGRES, 0.0)
    s, u = opts.stores, opts.utilisation
    primaries = max(1, math.ceil(pg_cores / (s.pg_cores * u)), math.ceil(wal / (s.pg_wal_mb_s * u)))
    measured = redis_measured_cmds_per_s(profile)
    redis_cores = cores.get(k.REDIS, 0.0)
    busy = profile.redis_busy
    return StoresPlan(
        xacts,
        wal,
        pg_cores,
        primaries,
        redis,
        redis_cores,
        measured,
        redis_busy_max_cmds_per_s=busy.busiest.cmds_per_s if busy is not None else 0.0,
        redis_busy_ceiling_cmds_per_s=busy.ceiling_cmds_per_s if busy is not None else 0.0,
        redis_factor=cost_factor(profile, redis),
    )


def limits(p: Plan, profile: Profile) -> tuple[Limit, ...]:
    peak, opts, cores = p.demand.peak_users, p.options, p.cores
    node_cores = p.nodes.max * (opts.node.cores - p.nodes.overhead_cores)
    out = [Limit("nodes (CPU)", node_cores, p.nodes.cores_needed, "cores", peak)]
    out += [
        Limit(f"{d.role} replicas", d.max_replicas, d.cores_at_peak, "cores", peak)
        for d in p.deployments
    ]
    out.append(Limit("ring shards", p.shards.ring, p.shards.ring_cores, "cores", peak))
    out += [
        Limit(f"hot SKU {sku} (one shard)", p.shards.ceiling_per_s, rate, "adds/s", peak)
        for sku, rate in p.shards.hot
    ]
    out += [Limit(c, 1.0, cores.get(c, 0.0), "cores", peak) for c in k.SINGLETONS]
    s = p.stores
    # Where Redis saturates, it takes headroom x the peak's commands.
    redis_at_saturation = s.redis_cmds_per_s / s.redis_cores if s.redis_cores > 0 else 0.0
    if s.redis_busy:
        # Measured busy: a bound only where the plan asks more than one core at the busiest
        # level's cost would serve.
        beyond = s.redis_cmds_per_s > s.redis_busy_ceiling_cmds_per_s
    else:
        beyond = redis_at_saturation > s.redis_measured_cmds_per_s
    out.append(Limit("redis (one core)", 1.0, s.redis_cores, "cores", peak, lower_bound=beyond))
    if not opts.stores.colocated:
        o = opts.stores
        out.append(Limit("postgres primary (CPU)", o.pg_cores, s.pg_cores, "cores", peak))
        out.append(Limit("postgres primary (WAL)", o.pg_wal_mb_s, s.pg_wal_mb_s, "MB/s", peak))
    if profile.software.settings.get("ingress") == "python":
        out.append(
            Limit(
                "ingress (a proxy per node)", p.nodes.max, cores.get(k.INGRESS, 0.0), "cores", peak
            )
        )
    return tuple(sorted((x for x in out if x.load > 0), key=lambda x: x.headroom))


def check_options(opts: Options) -> None:
    """Refuses what the model would divide by, round to an int or turn into negative headroom
    (``nan`` fails every comparison, so each test is written to fail on it)."""
    if not 0 < opts.utilisation <= 1:
        raise PlanInputError("the target utilisation must be above 0 and at most 1")
    sizes = {
        "node cores": opts.node.cores,
        "node memory": opts.node.memory_gib,
        "the primary's cores": opts.stores.pg_cores,
        "the primary's WAL MB/s": opts.stores.pg_wal_mb_s,
    }
    for name, value in sizes.items():
        if not (math.isfinite(value) and value > 0):
            raise PlanInputError(f"{name} must be a positive finite number, not {value:g}")
    if not (math.isfinite(opts.client_us) and opts.client_us >= 0):
        raise PlanInputError(f"a client's CPU per request cannot be {opts.client_us:g} us")
    if opts.fixed_nodes is not None and opts.fixed_nodes < 1:
        raise PlanInputError("a cluster has at least one node")


def make_plan(profile: Profile, d: Demand, opts: Options) -> Plan:
    check_options(opts)
    rates = d.at_peak()
    mixed = profile.mixes.get(d.mix) if opts.mixed else None
    # A shard's cost per call depends on how many calls share its batches, so on the ring's
    # size, which depends on the shards' cores: start from the measured stack's ring, then
    # size it once more with the costs that ring gives.
    ring = int(profile.software.settings.get("shards", 1) or 1)
    for _ in range(2):
        load = EngineLoad(d.hot_adds_at_peak(), len(opts.hot_skus), ring)
        cores = cores_by_component(profile, rates, load, mixed)
        if opts.client_us > 0:
            cores[k.LOAD_GENERATOR] = sum(rates.values()) * opts.client_us / 1e6
        shards = plan_shards(profile, d, cores, opts)
        if opts.fixed_nodes is not None or shards.ring == ring:
            break
        ring = shards.ring
    deployments = tuple(
        replace(x, max_replicas=opts.replica_caps[x.role]) if x.role in opts.replica_caps else x
        for x in plan_deployments(profile, d, cores, opts.utilisation, mixed)
    )
    nodes = plan_nodes(profile, cores, deployments, shards, opts)
    stores = plan_stores(profile, rates, cores, opts)
    alone = cores_by_component(profile, rates, load) if mixed is not None else {}
    if alone and k.LOAD_GENERATOR in cores:
        alone[k.LOAD_GENERATOR] = cores[k.LOAD_GENERATOR]
    draft = Plan(
        demand=d,
        options=opts,
        rates_at_peak=rates,
        cores=cores,
        deployments=deployments,
        shards=shards,
        nodes=nodes,
        stores=stores,
        limits=(),
        engine=load,
        mixed=mixed,
        classes_only=alone,
    )
    found = limits(draft, profile)
    if not found:
        raise PlanInputError("the scenario puts no load on any component at this peak")
    return replace(draft, limits=found)


def scaled(d: Demand, share: float) -> Demand:
    """``d`` with every stage's users (and the extra classes' rates) times ``share``."""
    return replace(
        d,
        peak_users=max(1, round(d.peak_users * share)),
        users=tuple(u * share for u in d.users),
        extra_at_peak={c: v * share for c, v in d.extra_at_peak.items()},
    )


def at_saturation(profile: Profile, d: Demand, opts: Options, rounds: int = 8) -> Plan:
    """The plan made again at the load where its first component saturates.

    A plan's headroom is worked out at the scenario's peak, but a role's cost per request
    depends on the load (the shards' and the publisher's ``batch_factor``, every other
    role's two measured rates), so peak x headroom is only a first estimate of where
    saturation comes; the plan is re-made there until its first component's headroom is
    within 1% of 1 (it converges: the factors are held between two measured rates, so cores
    move with the load by a bounded ratio; ``rounds`` bounds it anyway).
    """
    plan = make_plan(profile, d, opts)
    for _ in range(rounds):
        headroom = plan.first.headroom
        if abs(headroom - 1.0) < 0.01:
            break
        d = scaled(d, headroom)
        plan = make_plan(profile, d, opts)
    return plan
