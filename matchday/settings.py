"""Typed settings, read from ``MATCHDAY_*`` environment variables and validated at start-up.

Never instantiated at import time: every Ray worker imports this module, and settings belong
to the process that starts things (STYLE.md, "no import-time side effects").
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from matchday.inventory.commands import Policy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MATCHDAY_", extra="ignore")

    # Empty means "start an embedded server" (the default on a laptop and in CI).
    database_url: str = ""
    redis_url: str = ""
    data_dir: Path = Path(".data")

    ray_address: str = ""
    namespace: str = "matchday"
    dashboard_host: str = "127.0.0.1"

    # Shards: a fixed pool hashed by SKU, plus dedicated shards that take pinned hot SKUs.
    # Two ring shards keep both cores of the reference machine busy (README, performance).
    shards: int = Field(default=2, ge=1, le=256)
    dedicated_shards: int = Field(default=1, ge=0, le=64)
    shard_cache_size: int = Field(default=200_000, ge=1_000)
    # After a restart, or once the cache evicted a young answer, cache misses are looked up
    # in the journal for this long: longer than any client keeps retrying one request.
    dedupe_window_s: float = Field(default=600.0, ge=10.0)
    # A client keeps up to this many calls in flight per shard: the next batch is already
    # queued at the shard while the previous one commits.
    client_in_flight: int = Field(default=2, ge=1, le=16)
    max_batch: int = Field(default=2048, ge=1, le=100_000)

    default_ttl_s: float = Field(default=900.0, gt=0)
    max_qty_per_request: int = Field(default=1_000, ge=1)
    min_ttl_s: float = Field(default=1.0, gt=0)
    max_ttl_s: float = Field(default=24 * 3600.0, gt=0)

    stream_name: str = "matchday:inventory"
    stream_maxlen: int = Field(default=1_000_000, ge=1_000)
    availability_key: str = "matchday:availability"

    @model_validator(mode="after")
    def _ttl_bounds(self) -> Settings:
        if not self.min_ttl_s <= self.default_ttl_s <= self.max_ttl_s:
            raise ValueError("default_ttl_s must lie between min_ttl_s and max_ttl_s")
        return self

    def policy(self) -> Policy:
        return Policy(
            max_qty_per_request=self.max_qty_per_request,
            min_ttl_s=self.min_ttl_s,
            max_ttl_s=self.max_ttl_s,
        )
