"""CPU accounting of the inventory benchmark: ``CpuMeter`` samples the CPU time of the
benchmark's own processes by role (``matchday.ops.cpu_roles``) and of the machine.

Roles here: ``load generator`` (this process: the load generator, plus the engine's client
library and Ray's client side for the engine), ``shards``, ``postgres`` (absent when
MATCHDAY_DATABASE_URL names an external server), ``redis``, and the Ray roles (``ray:gcs``,
``ray:raylet``, ``ray:publisher`` = the outbox relay, ``ray:other``, ...); then ``foreign``
(busy CPU outside the benchmark), ``machine`` and ``steal``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from bench.costs import ordered
from matchday.ops.cpu_roles import (
    LOAD_GENERATOR,
    NOT_ROLES,
    SHARDS,
    CpuSample,
    cores_used,
    cpu_sample,
)


class CpuMeter:
    """Samples of this process's tree (Ray's GCS, raylet and workers, the embedded Redis)
    and of the embedded PostgreSQL's postmaster and backends, each process by role."""

    def __init__(self) -> None:
        self.shard_pids: set[int] = set()
        self.me = os.getpid()
        self.postmaster: int | None = None

    def snapshot(self) -> CpuSample:
        labels = {pid: SHARDS for pid in self.shard_pids}
        labels[self.me] = LOAD_GENERATOR
        return cpu_sample({"auto": self.me, "postgres": self.postmaster}, labels)

    @staticmethod
    def cores(before: CpuSample, after: CpuSample) -> dict[str, float]:
        return cores_used(before, after)


def fmt_cores(cpu: Mapping[str, float]) -> str:
    shown = [k for k in ordered(cpu) if cpu[k] >= 0.005] + [k for k in NOT_ROLES if k in cpu]
    return ", ".join(f"{k} {cpu[k]:.2f}" for k in shown)
