"""The inventory benchmark's fixed settings: the recovery target (under 2 s; issue 12's
throughput and CPU targets are in ``bench.targets``), the stock and sizes of its phases, the
engine tables it analyzes, where results go, and ``Config``, one run's resolved options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TARGET_RECOVERY_S = 2.0

HOT_STOCK = 10**12  # never sells out
SKU_STOCK = 1_000_000
TTL_S = 3600.0  # no reservation expires while the benchmark runs
SCALE_SKUS = 10_000
SCALE_SHARDS = (1, 2, 4)

ENGINE_TABLES = (
    "inventory",
    "sku_pins",
    "reservations",
    "customer_units",
    "inventory_batches",
    "inventory_requests",
    "inventory_outbox",
    "shard_epochs",
)
# How long ``BenchBase.settle`` waits for autovacuum and Redis's background saves to end.
SETTLE_LIMIT_S = 60.0

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


@dataclass(frozen=True)
class Config:
    seconds: float
    warmup: float
    concurrency: list[int]
    clients: int
    quick: bool
    memory_skus: int
    held_reservations: int
    recovery_attempts: int
    analyze: bool = True
    runs: int = 1  # engine-vs-baselines rounds of the hot-SKU phase, each a fresh engine
    idle_seconds: float = 2.0  # idle window before each round's measured phases
