"""The plan as the markdown page a capacity planner reads (``report.md``)."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from matchday.capacity import classes as k
from matchday.capacity.admission import SHARD_CALLS_PER_FAN, admission_adds_per_s
from matchday.capacity.demand import sell_out_s
from matchday.capacity.mixed import report_lines
from matchday.capacity.plan import batch_factor, engine_rates
from matchday.capacity.plan_model import Limit, Plan
from matchday.capacity.profile import Profile
from matchday.capacity.scaling import rate_factors, role_rates, two_rate_classes

ADR_PAST_ONE_PRIMARY = "docs/adr/0024-past-one-postgresql-primary.md"
# Ray's published scalability envelope (ray-project/ray release/benchmarks/README.md): what
# its release tests run, not a hard limit. Past it, the plan says so (ADR 0024).
RAY_TESTED_NODES = 250
RAY_TESTED_ACTORS = 10_000


def _n(x: float) -> str:
    if math.isinf(x):
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.2f}".rstrip("0").rstrip(".")


def _x(headroom: float) -> str:
    return f"{headroom:.3g}x"


def _limit_row(x: Limit) -> str:
    at_least = "at least " if x.lower_bound else ""
    return (
        f"| {x.name} | {_n(x.load)} {x.unit} | {_n(x.capacity)} {x.unit} | {x.headroom:.2f}x"
        f" | {at_least}{_n(x.saturates_at_users)} |"
    )


def redis_line(p: Plan, lead: str = "Redis") -> str:
    s = p.stores
    line = f"{lead} {s.redis_cmds_per_s:,.0f} commands/s on {s.redis_cores:.2f} of its one core"
    bound = any(x.lower_bound for x in p.limits if x.name.startswith("redis"))
    if s.redis_busy:
        busy = (
            f"its cost per command from the busy-Redis phase (x{s.redis_factor:.2g} the light"
            f" phases' at this rate; measured up to {s.redis_busy_max_cmds_per_s:,.0f}"
            f" commands/s, one core at that cost serving ~{s.redis_busy_ceiling_cmds_per_s:,.0f}/s)"
        )
        if not bound:
            return f"{line}, {busy}: where it saturates is an estimate."
        return (
            f"{line}, {busy}: an upper bound, since the plan asks more than that ceiling and"
            " Redis past it was not measured. Where it saturates is the least it takes."
        )
    if not bound:
        return f"{line}, at the light phases' cost per command (no busy-Redis phase)."
    return (
        f"{line}: an upper bound. The profile has no busy-Redis phase; it measured Redis at up"
        f" to {s.redis_measured_cmds_per_s:,.0f} commands/s, about one command per wakeup of its"
        " event loop; a busy Redis serves many clients' commands per wakeup, so each costs"
        " less. Where it saturates is the least it takes (docs/capacity.md, 2026-12-03)."
    )


def summary(p: Plan) -> list[str]:
    n, s, first = p.nodes, p.stores, p.first
    node = p.options.node
    lines = [
        f"- **{n.at_peak} node(s)** of {node.cores:g} cores and {node.memory_gib:g} GiB at the"
        f" peak (autoscaling {n.min}-{n.max}), {p.requests_per_s:,.0f} requests/s.",
        f"- **Shards**: {p.shards.ring} on the ring + {p.shards.dedicated} dedicated"
        + (f"; pin {', '.join(sku for sku, _ in p.shards.pins)}." if p.shards.pins else "."),
        f"- **PostgreSQL**: {s.pg_write_xacts_per_s:,.0f} write transactions/s,"
        f" {s.pg_wal_mb_s:,.1f} MB/s of WAL, {s.pg_cores:,.2f} cores"
        + (
            f": **more than one primary can take ({s.primaries_needed} needed)**."
            if p.beyond_one_primary
            else ": one primary is enough."
        ),
        f"- {redis_line(p, '**Redis**:')}",
        f"- **First to saturate: {first.name}**, at {_x(first.headroom)} the peak"
        f" (~{_n(first.saturates_at_users)} users, ~{_n(p.saturation_requests_per_s)}"
        f" requests/s); headroom at the peak {first.headroom - 1:+.0%}.",
    ]
    if first.lower_bound:
        lines[-1] += " That is the least it takes (see Redis above)."
        then = next((x for x in p.limits if not x.lower_bound), None)
        if then is not None:
            lines[-1] += (
                f" The first whose saturation is estimated, not bounded: **{then.name}** at"
                f" {_x(then.headroom)} the peak (~{_n(then.saturates_at_users)} users)."
            )
    return lines


def inputs(p: Plan, profile: Profile, scenario: str) -> list[str]:
    m, sw, o = profile.machine, profile.software, p.options
    settings = ", ".join(f"{key} {v}" for key, v in sorted(sw.settings.items()))
    contended = profile.contention.foreign_cores
    return [
        f"- Scenario `{scenario}` (loadtests/{scenario}.py), {p.demand.peak_users:,} users at"
        f" its peak, stock state `{p.demand.state}`; think time x{p.demand.think:g}.",
        f"- Nodes: {o.node.cores:g} cores, {o.node.memory_gib:g} GiB, target utilisation"
        f" {o.utilisation:.0%}" + (f", fixed at {o.fixed_nodes}" if o.fixed_nodes else "") + ".",
        f"- PostgreSQL primary: {o.stores.pg_cores:g} cores, {o.stores.pg_wal_mb_s:g} MB/s of WAL"
        + (" (on the nodes: colocated)" if o.stores.colocated else "")
        + ".",
        f"- Profile: measured {profile.measured_at} against {profile.target} on {m.cores} cores"
        f" ({m.cpu_model}), {m.memory_bytes / 2**30:.0f} GiB; matchday {sw.matchday}"
        f"{' ' + sw.commit[:10] if sw.commit else ''}, Ray {sw.ray}, Python {sw.python};"
        f" {settings}.",
        f"- Other load on the measuring machine: {contended:.2f} cores on average"
        + (
            " (costs per request hold up under it; throughput would not)."
            if contended > 0.1
            else "."
        ),
    ]


def demand_table(p: Plan, drop_units: int | None) -> list[str]:
    out = ["| class | requests/s at the peak | share |", "| --- | --- | --- |"]
    total = p.requests_per_s
    for c in k.CLASSES:
        r = p.rates_at_peak[c]
        if r > 0:
            out.append(f"| {c} | {r:,.1f} | {r / total:.1%} |")
    out.append(f"| **total** | **{total:,.1f}** | |")
    hot = p.demand.hot_adds_at_peak()
    out += [
        "",
        f"Add-to-cart attempts on the drop at the peak: {hot:,.1f}/s over"
        f" {len(p.shards.hot)} hot SKU(s).",
    ]
    if drop_units is not None:
        t = sell_out_s(p.demand, drop_units)
        out.append(
            f"A drop of {drop_units:,} units is gone ~{t:.0f} s into the scenario (if nobody"
            " is refused a unit)."
            if t is not None
            else f"A drop of {drop_units:,} units lasts the whole scenario at this demand."
        )
    return out


def deployments_table(p: Plan) -> list[str]:
    out = [
        "| deployment | requests/s | cores | replicas at peak | autoscaling | target ongoing |"
        " max ongoing | latency ms |",
        "| --- " * 8 + "|",
    ]
    for d in p.deployments:
        out.append(
            f"| {d.role.removeprefix(k.REPLICA)} | {d.rate_at_peak:,.0f} | {d.cores_at_peak:.2f}"
            f" | {d.replicas_at_peak} | {d.min_replicas}-{d.max_replicas} | {d.target_ongoing}"
            f" | {d.max_ongoing} | {d.latency_ms:.1f} |"
        )
    return out


def rate_section(p: Plan, profile: Profile) -> list[str]:
    """Which roles and classes were planned at a cost other than the light phase's."""
    measured = two_rate_classes(profile)
    if not measured:
        return [
            "The profile has one rate per class (schema version 1, or no class took a second"
            " rate): every role but the shards and the publisher is planned at its light-load"
            " cost per request."
        ]
    one = [c for c in profile.classes if c not in measured]
    factors = rate_factors(profile, p.rates_at_peak)
    busy = " and Redis" if profile.redis_busy is not None else ""
    if busy:  # its factor is the busy phase's, in the PostgreSQL and Redis section
        factors.pop(k.REDIS, None)
    seen = role_rates(profile, p.rates_at_peak)
    out = [
        f"Costs measured at two rates: {len(measured)} of {len(profile.classes)} classes"
        + (f" (one rate only: {', '.join(one)})" if one else "")
        + ". Each role's light-load cost for a class is scaled by the power law through the"
        " class's two rates, at the requests/s the role takes at the peak, held at both"
        f" measured rates (ADR 0023); the shards and the publisher keep their batching above{busy}"
        f"{' its busy phase' if busy else ''}."
        + (" Roles and classes whose cost changed:" if factors else " No cost changed."),
    ]
    if factors:
        out += ["", "| role | requests/s at the peak | cost x, per class |", "| --- | --- | --- |"]
        for role in sorted(factors):
            each = ", ".join(f"{c} x{f:.3g}" for c, f in sorted(factors[role].items()))
            out.append(f"| {role} | {_n(seen[role])} | {each} |")
    return out


def stores_section(p: Plan) -> list[str]:
    s, o = p.stores, p.options.stores
    out = [
        f"PostgreSQL primary: {s.pg_write_xacts_per_s:,.0f} write transactions/s,"
        f" {s.pg_wal_mb_s:,.2f} MB/s of WAL, {s.pg_cores:,.2f} cores of {o.pg_cores:g}"
        f" ({s.pg_cores / o.pg_cores:.0%}); {redis_line(p)}",
    ]
    if p.beyond_one_primary:
        out += [
            "",
            f"**This scenario crosses the point where one PostgreSQL primary is enough**"
            f" (ADR 0024, `{ADR_PAST_ONE_PRIMARY}`): at {p.options.utilisation:.0%} it needs"
            f" {s.primaries_needed} primaries. Partition the inventory into"
            f" {s.primaries_needed} shard groups, each with its own primary (a shard's SKUs,"
            " reservations and journal on one primary; checkout commits per group), and the"
            " orders and payments by customer the same way (checkout is most of a kick-off's"
            " writes), or move to a distributed PostgreSQL; the ADR gives the numbers for both.",
        ]
    if s.redis_cores > p.options.utilisation:
        out += [
            "",
            f"**This scenario takes Redis past {p.options.utilisation:.0%} of its one core**"
            f" ({s.redis_cores:.2f} cores at the peak; ADR 0024, `{ADR_PAST_ONE_PRIMARY}`,"
            ' "Redis and Ray"): split it by role (rate limits and idempotency keys; the'
            " catalogue cache and availability; streams and poll tallies), then Redis Cluster"
            " for the per-client keys. The engine never depends on Redis for correctness.",
        ]
    return out


def ray_envelope(p: Plan) -> list[str]:
    actors = sum(d.max_replicas for d in p.deployments) + p.shards.ring + p.shards.dedicated
    if p.nodes.max <= RAY_TESTED_NODES and actors <= RAY_TESTED_ACTORS:
        return []
    return [
        "",
        f"**Past Ray's tested envelope**: {p.nodes.max} nodes and {actors:,} actors at the"
        f" autoscaling maxima, where Ray's release tests cover {RAY_TESTED_NODES} nodes and"
        f" {RAY_TESTED_ACTORS:,} actors. Split the shop into several Ray clusters behind one"
        " load balancer, each with its own shard groups (ADR 0024).",
    ]


def markdown(p: Plan, profile: Profile, scenario: str, drop_units: int | None = None) -> str:
    title = f"# Capacity plan: {scenario}, {p.demand.peak_users:,} users at the peak"
    out = [title, "", *summary(p), "", "## Inputs", "", *inputs(p, profile, scenario)]
    out += ["", "## Demand", "", *demand_table(p, drop_units), "", "![demand](demand.png)"]
    out += ["", "## Deployments", "", *deployments_table(p)]
    sh = p.shards
    out += [
        "",
        "## Shards",
        "",
        f"{sh.ring} ring shard(s) for {sh.ring_cores:.2f} cores of engine work, {sh.dedicated}"
        f" dedicated (one per pinned SKU, one spare). One shard serving one hot SKU reached"
        f" {sh.ceiling_per_s:,.0f} reserves/s when measured"
        f" ({profile.hot_shard.callers} callers; its CPU alone would allow"
        f" {profile.hot_shard.cpu_ceiling_per_s:,.0f}/s).",
    ]
    per_ring, per_hot, events = engine_rates(p.rates_at_peak, p.engine)
    out.append(
        "Shards and the event publisher group-commit: the more calls a process takes, the"
        " less each costs (ADR 0023). At the peak a ring shard takes"
        f" {per_ring:,.0f} calls/s (cost x {batch_factor(profile, k.SHARDS, per_ring):.2f}),"
        f" a hot SKU's shard {per_hot:,.0f} adds/s"
        f" (x {batch_factor(profile, k.SHARDS, per_hot):.2f}), the publisher {events:,.0f}"
        f" events/s (x {batch_factor(profile, 'ray:publisher', events):.2f}): the light-load"
        " cost per call scaled by the power law through the add phase and the hot phase."
    )
    for sku, rate in sh.pins:
        out.append(f"- `matchday pin {sku}`: {rate:,.0f} adds/s at the peak")
    admit = admission_adds_per_s(sh.ceiling_per_s, p.options.utilisation)
    over = [sku for sku, rate in sh.hot if rate > admit]
    if over:
        fans = admit / SHARD_CALLS_PER_FAN
        out += [
            "",
            f"More fans reach for {', '.join(over)} than one shard takes: admit them"
            f" through the waiting room at no more than {admit:,.0f} adds/s each (the"
            f" measured ceiling at {p.options.utilisation:.0%}), {fans:,.1f} fans/s at"
            f" {SHARD_CALLS_PER_FAN:g} shard calls per fan (what `--rate auto` sets).",
        ]
    out += ["", "## Cost with the rate", "", *rate_section(p, profile)]
    mix = report_lines(p.mixed, p.cores, p.classes_only, p.requests_per_s)
    out += ["", "## Cost from the scenario's mix", "", *mix]
    n = p.nodes
    out += [
        "",
        "## Nodes",
        "",
        f"{n.cores_needed:.2f} cores and {n.memory_gib_needed:.1f} GiB of work at the peak;"
        f" Ray and the ingress take {n.overhead_cores:.2f} cores and {n.overhead_gib:.1f} GiB"
        f" per node idle. {n.at_peak} node(s) at the peak; keep them up for the match (pods"
        f" start in minutes, a kick-off peaks in one); autoscaling up to {n.max}.",
        *ray_envelope(p),
        "",
        "## PostgreSQL and Redis",
        "",
        *stores_section(p),
        "",
        "## What saturates first",
        "",
        "Capacity is each component's at 100% (the autoscaling maxima of this plan); load grows"
        " with the users, so a component saturates at peak x headroom users.",
        "",
        "| component | load at the peak | capacity | headroom | saturates at users |",
        "| --- | --- | --- | --- | --- |",
        *[_limit_row(x) for x in p.limits],
        "",
        "![load against capacity](load.png)",
        "",
        "## Files",
        "",
        "- `serve_config.yaml`: `serve deploy serve_config.yaml` on a Ray cluster.",
        "- `rayservice-patch.yaml`: `kubectl -n matchday patch rayservice matchday --type merge"
        " --patch-file rayservice-patch.yaml` (KubeRay).",
        "- `plan.json`: these numbers for tools.",
    ]
    return "\n".join(out) + "\n"


def as_dict(p: Plan, scenario: str) -> dict[str, Any]:
    """The plan's numbers for tools (``plan.json``)."""
    return {
        "scenario": scenario,
        "peak_users": p.demand.peak_users,
        "state": p.demand.state,
        "think": p.demand.think,
        "options": asdict(p.options),
        "requests_per_s": dict(p.rates_at_peak),
        "cores": dict(p.cores),
        "deployments": [asdict(d) for d in p.deployments],
        "shards": asdict(p.shards),
        "nodes": asdict(p.nodes),
        "stores": asdict(p.stores),
        "limits": [
            {**asdict(x), "headroom": x.headroom, "saturates_at_users": x.saturates_at_users}
            for x in p.limits
        ],
        "mixed_phase": p.mixed is not None,
        "cores_from_classes_only": dict(p.classes_only),
        "first": p.first.name,
        "saturation_requests_per_s": p.saturation_requests_per_s,
        "beyond_one_primary": p.beyond_one_primary,
    }
