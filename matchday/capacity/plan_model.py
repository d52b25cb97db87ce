"""What a capacity plan is: its options (the node size, the datastores, the target
utilisation) and its parts (deployments, shards, nodes, datastores, the limits in the order
they saturate). ``matchday.capacity.plan`` computes one; the report, the deploy files and
the charts read it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from matchday.capacity.demand import Demand
from matchday.capacity.profile import MixedCost


@dataclass(frozen=True)
class Node:
    cores: float
    memory_gib: float


@dataclass(frozen=True)
class Stores:
    pg_cores: float = 16.0  # the PostgreSQL primary's cores
    pg_wal_mb_s: float = 64.0  # WAL it can write and ship to a standby, sustained
    colocated: bool = False  # PostgreSQL and Redis on the plan's nodes (one-node validation)


@dataclass(frozen=True)
class Options:
    node: Node
    utilisation: float = 0.7
    stores: Stores = field(default_factory=Stores)
    hot_skus: tuple[str, ...] = ("JERSEY-FINAL-LTD-M",)
    fixed_nodes: int | None = None  # a given cluster: report where it saturates
    client_us: float = 0.0  # CPU per request of a load generator on the same nodes
    # A deployed config's replica maxima (role -> replicas), instead of the plan's own.
    replica_caps: Mapping[str, int] = field(default_factory=dict)
    # Take each role's cost from the scenario's mixed phase when the profile has one
    # (``matchday.capacity.mixed``); False: the classes' sum only.
    mixed: bool = True


@dataclass(frozen=True)
class DeploymentPlan:
    role: str
    rate_at_peak: float
    cores_at_peak: float
    replicas_at_peak: int
    min_replicas: int
    max_replicas: int
    latency_ms: float
    target_ongoing: int
    max_ongoing: int


@dataclass(frozen=True)
class ShardPlan:
    ring: int
    dedicated: int
    ring_cores: float
    pins: tuple[tuple[str, float], ...]  # (SKU, add attempts/s at the peak)
    hot: tuple[tuple[str, float], ...]  # every hot SKU and its rate
    ceiling_per_s: float


@dataclass(frozen=True)
class NodePlan:
    at_peak: int
    min: int
    max: int
    cores_needed: float
    memory_gib_needed: float
    overhead_cores: float  # per node: Ray and the ingress with no traffic
    overhead_gib: float


@dataclass(frozen=True)
class StoresPlan:
    pg_write_xacts_per_s: float
    pg_wal_mb_s: float
    pg_cores: float
    primaries_needed: int
    redis_cmds_per_s: float
    redis_cores: float
    # The most commands/s any phase of the profile sent Redis: past it, its cost per command
    # is the low-rate one held (an upper bound, ``plan.redis_measured_cmds_per_s``).
    redis_measured_cmds_per_s: float = 0.0
    # From the busy-Redis phase (0 without one): the most commands/s it reached, and the
    # commands/s one core serves at that level's cost.
    redis_busy_max_cmds_per_s: float = 0.0
    redis_busy_ceiling_cmds_per_s: float = 0.0
    # What the busy phase scaled Redis's light cost per command by at this plan's rate.
    redis_factor: float = 1.0

    @property
    def redis_busy(self) -> bool:
        return self.redis_busy_ceiling_cmds_per_s > 0


@dataclass(frozen=True)
class Limit:
    name: str
    capacity: float
    load: float
    unit: str
    peak_users: int
    # Its load was extrapolated from costs that can only fall with the rate: where it
    # saturates is then the least it takes, not an estimate.
    lower_bound: bool = False

    @property
    def headroom(self) -> float:
        return self.capacity / self.load if self.load > 0 else math.inf

    @property
    def saturates_at_users(self) -> float:
        return self.peak_users * self.headroom


@dataclass(frozen=True)
class EngineLoad:
    """Where the engine calls go: the drop's SKUs each on a shard of their own (or beside a
    few others), every other call spread over the ring."""

    hot_adds: float  # add attempts/s on the drop's SKUs, all together
    hot_skus: int
    ring: int  # shards on the ring


@dataclass(frozen=True)
class Plan:
    demand: Demand
    options: Options
    rates_at_peak: Mapping[str, float]
    cores: Mapping[str, float]  # component -> cores at the peak
    deployments: tuple[DeploymentPlan, ...]
    shards: ShardPlan
    nodes: NodePlan
    stores: StoresPlan
    limits: tuple[Limit, ...]  # least headroom first
    engine: EngineLoad  # what the shards' and the publisher's batching was sized for
    mixed: MixedCost | None = None  # the scenario's mixed phase the costs came from
    classes_only: Mapping[str, float] = field(default_factory=dict)  # cores without it

    @property
    def first(self) -> Limit:
        return self.limits[0]

    @property
    def requests_per_s(self) -> float:
        return sum(self.rates_at_peak.values())

    @property
    def saturation_requests_per_s(self) -> float:
        """Total requests/s at which the first component saturates."""
        return self.requests_per_s * self.first.headroom

    @property
    def beyond_one_primary(self) -> bool:
        return self.stores.primaries_needed > 1
