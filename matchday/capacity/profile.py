"""The cost profile: what one request of each class costs each component, on one machine.

``matchday capacity measure`` writes it as JSON; ``plan`` and ``validate`` read it. It records
the machine and the software it was measured on, so two profiles can be compared, and a
schema version: a profile from another version is refused (:class:`ProfileError`), never
half-read. Costs are per request and net of what the stack burns idle (``idle``), so they
hold up when the machine is shared; ``contention`` says how busy the rest of it was.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from matchday.capacity.classes import CLASSES, component

SCHEMA = "matchday.capacity.profile"
# Bump on any change a reader must know about; readers refuse every version outside
# OLDEST..VERSION. Version 2 added a second measured rate per class (``ClassCost.high``);
# version 3 the mixed phase (``Profile.mixes``: each scenario's own mix at two rates);
# version 4 the busy-Redis phase (``Profile.redis_busy``). An older profile reads as one
# without them, and plans exactly as it did.
VERSION = 4
OLDEST = 1
MIXES_SINCE = 3
REDIS_BUSY_SINCE = 4


class PlanInputError(ValueError):
    """Input the planner refuses: the CLI prints it and exits non-zero, writing nothing."""


class ProfileError(PlanInputError):
    pass


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Machine(_Model):
    cores: int = Field(ge=1)
    cpu_model: str
    memory_bytes: int = Field(ge=1)
    platform: str


class Software(_Model):
    matchday: str
    commit: str = ""
    ray: str
    python: str
    # The settings that change costs: shards, ingress, batching, gateway...
    settings: dict[str, str | int | float | bool]


class Latency(_Model):
    mean_ms: float = Field(ge=0)
    p50_ms: float = Field(ge=0)
    p99_ms: float = Field(ge=0)


def _not_negative(v: dict[str, float]) -> dict[str, float]:
    if any(x < 0 for x in v.values()):
        raise ValueError("CPU per request is never negative")
    return v


# CPU microseconds per request, per process role, net of the idle burn.
CpuUs = Annotated[dict[str, float], AfterValidator(_not_negative)]


class RatePoint(_Model):
    """A class measured a second time, at a higher rate, for as long (more requests)."""

    requests: int = Field(ge=1)
    errors: int = Field(ge=0)
    rate_per_s: float = Field(gt=0)  # reached
    cpu_us: CpuUs
    pg_write_xacts: float = Field(ge=0)
    pg_wal_bytes: float = Field(ge=0)
    redis_cmds: float = Field(ge=0)


class ClassCost(_Model):
    requests: int = Field(ge=1)  # answered as the class expects (2xx, or 409 for sold out)
    errors: int = Field(ge=0)
    rate_per_s: float = Field(gt=0)
    latency: Latency
    cpu_us: CpuUs
    pg_write_xacts: float = Field(ge=0)  # PostgreSQL transactions that wrote, per request
    pg_wal_bytes: float = Field(ge=0)
    redis_cmds: float = Field(ge=0)
    # The second measured rate (version 2); None in version 1, or where measure left it out
    # (the base phase already took most of the machine, or the higher rate failed).
    high: RatePoint | None = None

    def shop_cpu_us(self) -> float:
        """Every role of the shop (not the load generator)."""
        return sum(v for k, v in self.cpu_us.items() if component(k) is not None)


class MixedCost(_Model):
    """A scenario's own request mix measured together (version 3): what one request of the
    mix costs each role, at a total rate (``cost``) and again at a higher one
    (``cost.high``), with the shares of the classes it was made of."""

    think: float = Field(ge=0)  # the think scale the mix was derived at
    stock: Literal["in_stock", "sold_out"]
    shares: dict[str, float]  # class -> share of the requests sent, summing to 1
    cost: ClassCost  # per request of the mix; rate_per_s is the whole mix's

    @field_validator("shares")
    @classmethod
    def _shares(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = [c for c in v if c not in CLASSES]
        if unknown:
            raise ValueError(f"no request class {', '.join(unknown)}")
        if any(x < 0 for x in v.values()) or abs(sum(v.values()) - 1.0) > 1e-3:
            raise ValueError("the shares of a mix are not negative and sum to 1")
        return v


class HotShard(_Model):
    """One shard serving one hot SKU: many callers reserving it at once, through Ray."""

    callers: int = Field(ge=1)
    reserves: int = Field(ge=1)
    seconds: float = Field(gt=0)
    reserves_per_s: float = Field(gt=0)  # reached here, with ``callers`` (a floor)
    shard_cpu_us: float = Field(gt=0)  # shard CPU per reserve at that load
    pg_write_xacts: float = Field(ge=0)  # per reserve: the group commit's share
    pg_wal_bytes: float = Field(ge=0)
    cpu_us: dict[str, float] = Field(default_factory=dict)  # every role, per reserve

    @property
    def cpu_ceiling_per_s(self) -> float:
        """Reserves/s at which the shard's one core is busy: the asymptote with more callers."""
        return 1e6 / self.shard_cpu_us


class RedisLevel(_Model):
    """One window of the busy-Redis phase: ``clients`` connections sending the shop's
    commands back to back."""

    clients: int = Field(ge=1)
    seconds: float = Field(gt=0)
    requests: int = Field(ge=1)  # the shop's requests the driver made (each a few commands)
    # As the class phases count them (``total_commands_processed``: a script's own calls
    # too), net of the idle rate and of the phase's own INFO reads.
    commands: float = Field(gt=0)
    cmds_per_s: float = Field(gt=0)
    cores: float = Field(gt=0)  # Redis's CPU (``INFO cpu``, all its threads) net of idle
    cpu_us_per_cmd: float = Field(gt=0)
    # Redis's own time inside the commands (``INFO commandstats``; a script's calls, not its
    # interpreter), per command: the rest of ``cpu_us_per_cmd`` is its event loop, the
    # sockets and Lua.
    exec_us_per_cmd: float = Field(ge=0)


class BusyRedis(_Model):
    """Redis driven busy (version 4): the shop's commands from many concurrent clients at a
    few concurrency levels, its CPU per command at each (``cluster/capacity_redis.py``)."""

    idle_cores: float = Field(ge=0)
    mix: dict[str, float]  # command -> share of the calls Redis counted (scripts' own too)
    levels: tuple[RedisLevel, ...] = Field(min_length=1)

    @property
    def busiest(self) -> RedisLevel:
        return max(self.levels, key=lambda x: x.cmds_per_s)

    @property
    def ceiling_cmds_per_s(self) -> float:
        """Commands/s at one core of Redis, at the busiest level's cost per command."""
        return 1e6 / self.busiest.cpu_us_per_cmd


class Idle(_Model):
    seconds: float = Field(gt=0)
    cores: dict[str, float]  # per role, with no traffic
    pg_write_xacts_per_s: float = Field(ge=0)
    pg_wal_bytes_per_s: float = Field(ge=0)
    redis_cmds_per_s: float = Field(ge=0)


class Processes(_Model):
    count: dict[str, int]  # processes per role
    rss_mb: dict[str, float]  # resident memory per process of each role, mean


class Contention(_Model):
    foreign_cores: float = Field(ge=0)  # busy CPU not ours during the phases, mean
    steal_cores: float = Field(ge=0)


class Profile(_Model):
    schema_name: str = Field(alias="schema")
    version: int
    measured_at: str
    target: str
    phase_s: float = Field(gt=0)
    machine: Machine
    software: Software
    idle: Idle
    contention: Contention
    classes: dict[str, ClassCost]
    hot_shard: HotShard
    processes: Processes
    # Scenario -> its mix measured together (version 3; none before, or when not measured).
    mixes: dict[str, MixedCost] = Field(default_factory=dict)
    # Redis driven busy (version 4; None before, or when ``--no-redis-busy`` left it out).
    redis_busy: BusyRedis | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2) + "\n"


def check_header(data: Any) -> None:
    """Refuse anything that is not a profile of this version, before reading its fields."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ProfileError("not a matchday capacity profile (no 'schema': " + repr(SCHEMA) + ")")
    version = data.get("version")
    if not isinstance(version, int):
        raise ProfileError("the profile has no schema version")
    if version < OLDEST:
        raise ProfileError(
            f"the profile is schema version {version}, older than this matchday's oldest, {OLDEST}:"
            " measure again with `matchday capacity measure`"
        )
    if version > VERSION:
        raise ProfileError(
            f"the profile is schema version {version}, newer than this matchday's {VERSION}:"
            " plan with the matchday that measured it"
        )


def parse_profile(text: str) -> Profile:
    """A profile from JSON text, checked whole: version, fields, every class measured."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"the profile is not JSON: {exc}") from None
    check_header(data)
    if data.get("mixes") and data["version"] < MIXES_SINCE:
        raise ProfileError(
            f"the profile is schema version {data['version']} but has mixed phases, which"
            f" version {MIXES_SINCE} added: measure again"
        )
    if data.get("redis_busy") and data["version"] < REDIS_BUSY_SINCE:
        raise ProfileError(
            f"the profile is schema version {data['version']} but has a busy-Redis phase, which"
            f" version {REDIS_BUSY_SINCE} added: measure again"
        )
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProfileError(f"the profile is malformed at {where}: {first['msg']}") from None
    missing = [c for c in CLASSES if c not in profile.classes]
    if missing:
        raise ProfileError(f"the profile lacks classes {', '.join(missing)}: measure again")
    unmeasured = [c for c, cost in profile.classes.items() if cost.shop_cpu_us() <= 0]
    if unmeasured:
        raise ProfileError(f"the profile has no CPU cost for {', '.join(unmeasured)}")
    return profile
