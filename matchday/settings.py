"""Typed settings, read from ``MATCHDAY_*`` environment variables and validated at start-up.

Never instantiated at import time: every Ray worker imports this module, and settings belong
to the process that starts things (STYLE.md, "no import-time side effects").
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from matchday.inventory.commands import Policy

_PLACEHOLDERS = {"changeme", "change-me", "secret", "password", "x" * 32}


def _as_secret(v: Any) -> SecretStr:
    return v if isinstance(v, SecretStr) else SecretStr(str(v))


def _strong_backup_key(v: SecretStr) -> SecretStr:
    # 32+ characters covers a base64-encoded 32-byte key (44 characters) as well.
    value = v.get_secret_value()
    if value and (len(value) < 32 or value.lower() in _PLACEHOLDERS):
        raise ValueError("backup_key must be at least 32 random characters (or base64 of 32 bytes)")
    return v


# Wrapped in SecretStr *before* it is checked, so a refusal never echoes the key: pydantic
# puts the raw input in its error text, and the CLI prints that text.
_BackupKey = Annotated[SecretStr, AfterValidator(_strong_backup_key), BeforeValidator(_as_secret)]


class Settings(BaseSettings):
    # hide_input_in_errors: a refused secret (too short, a placeholder) must not be echoed
    # back in the validation error the CLI prints.
    model_config = SettingsConfigDict(
        env_prefix="MATCHDAY_", extra="ignore", hide_input_in_errors=True
    )

    # Empty means "start an embedded server" (the default on a laptop and in CI).
    database_url: str = ""
    # A read replica for reports (issue 6); empty: reports read the primary.
    reports_database_url: str = ""
    redis_url: str = ""
    # Redis connections per HTTP process (a Serve replica). redis-py's own default is 100 and it
    # refuses the 101st at once, below a replica's max_ongoing_requests (serve/presets.py) plus
    # its long-lived event streams. With every connection busy, a request waits up to
    # redis_pool_timeout_s for one to be free before it fails (as a retryable 503).
    redis_max_connections: int = Field(default=512, ge=1)
    redis_pool_timeout_s: float = Field(default=1.0, gt=0)
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
    # Batches go to a shard over a direct link, Ray's call the fallback (ADR 0031).
    shard_link: bool = True
    # How long a call waits for more mutations while another to its shard is in flight
    # (matchday.inventory.client.LINGER_S says what it was measured at); 0 turns it off.
    client_linger_ms: float = Field(default=2.0, ge=0.0, le=50.0)
    max_batch: int = Field(default=2048, ge=1, le=100_000)

    default_ttl_s: float = Field(default=900.0, gt=0)
    max_qty_per_request: int = Field(default=1_000, ge=1)
    min_ttl_s: float = Field(default=1.0, gt=0)
    max_ttl_s: float = Field(default=24 * 3600.0, gt=0)

    stream_name: str = "matchday:inventory"
    stream_maxlen: int = Field(default=1_000_000, ge=1_000)
    availability_key: str = "matchday:availability"

    # HTTP. Empty secret_key: the run command generates one per data directory (0600 file).
    secret_key: SecretStr = SecretStr("")
    http_host: str = "127.0.0.1"
    # The Serve ingress: "haproxy" (~3x Ray's default Python proxy on add-to-cart over
    # HTTP, bench/http.py; every listener on 127.0.0.1, ADR 0006) or "python".
    ingress: Literal["haproxy", "python"] = "haproxy"
    # Each shop replica serves ordinary adds on a second port of its own, routed to by the
    # HAProxy ingress (ADR 0033); off, they go through Serve's server as other requests do.
    add_lane: bool = True
    http_port: int = Field(default=8000, ge=1, le=65535)
    # HTTPS on the Serve ingress itself (PEM files, both or neither; ADR 0012). Serve 2.60
    # terminates TLS only in its Python proxy (uvicorn); with the HAProxy ingress, TLS ends
    # at a front proxy or the platform's load balancer instead, and the run command refuses
    # these two rather than serve plain HTTP behind a certificate that is never used.
    tls_certfile: str = ""
    tls_keyfile: str = ""
    # A checkout extends its holds by this much, so none can expire while the card is charged.
    payment_hold_s: float = Field(default=600.0, ge=30.0)
    # Per client (shopper token, else address): a token bucket in Redis.
    rate_limit_per_s: float = Field(default=20.0, gt=0)
    rate_limit_burst: int = Field(default=40, ge=1)
    max_body_bytes: int = Field(default=65_536, ge=1_024)
    catalog_cache_ttl_s: float = Field(default=300.0, ge=1.0)
    idempotency_ttl_s: float = Field(default=86_400.0, ge=60.0)

    # The waiting room (ADR 0026). A capacity profile (`matchday capacity measure`) lets a
    # drop's rate be "auto": the hot shard's ceiling x this utilisation, per admitted fan.
    capacity_profile: str = ""
    capacity_utilisation: float = Field(default=0.7, gt=0, le=1)
    # Automatic drops: a SKU in no drop whose adds stay above auto_drop_adds_per_s over
    # auto_drop_window_s gets a queue of its own, opened at once; it closes when its adds
    # stayed under half that for auto_drop_hold_s and nobody waits. Off by default: it changes
    # what fans see on SKUs no operator chose (a pass is then needed), and load tests that
    # flood one SKU on purpose (the "queue off" side of loadtests/drop.py) must stay as run.
    auto_drop: bool = False
    auto_drop_adds_per_s: float = Field(default=300.0, gt=0)
    auto_drop_window_s: float = Field(default=10.0, ge=1.0, le=600.0)
    auto_drop_hold_s: float = Field(default=120.0, ge=10.0, le=86_400.0)
    # The admission rate of an automatic drop without a capacity profile.
    auto_drop_rate_per_s: float = Field(default=50.0, ge=0.01, le=100_000)

    # Payments (ADR 0008). No gateway named: Stripe when a key is configured, else the
    # deterministic test gateway (so `make run` works offline).
    payment_gateway: Literal["test", "stripe"] | None = None
    stripe_api_key: SecretStr = SecretStr("")
    stripe_api_base: str = "https://api.stripe.com"
    stripe_webhook_secret: SecretStr = SecretStr("")
    # A second Stripe account: the router fails over to it when the primary is down.
    stripe_backup_api_key: SecretStr = SecretStr("")
    stripe_backup_api_base: str = "https://api.stripe.com"
    stripe_backup_webhook_secret: SecretStr = SecretStr("")
    # Card, wallets (they ride on "card"), buy-now-pay-later ("klarna", "affirm", ...).
    stripe_payment_method_types: list[str] = Field(default_factory=lambda: ["card"])
    stripe_capture_method: Literal["manual", "automatic"] = "manual"
    stripe_timeout_s: float = Field(default=10.0, gt=0, le=80.0)
    payment_region: str = "local"
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_s: float = Field(default=30.0, gt=0)
    # The worker: an order is looked at again this long after its charge began (a live
    # checkout finishes well within it), then with exponential backoff and jitter.
    payment_settle_grace_s: float = Field(default=60.0, ge=0)
    payment_retry_base_s: float = Field(default=2.0, gt=0)
    payment_retry_max_s: float = Field(default=300.0, gt=0)
    payment_worker_poll_s: float = Field(default=1.0, gt=0)
    # Velocity rules: more checkouts than this within the window holds the order for review.
    fraud_window_s: float = Field(default=3600.0, gt=0)
    fraud_max_per_customer: int = Field(default=10, ge=1)
    fraud_max_per_card: int = Field(default=10, ge=1)
    fraud_max_per_ip: int = Field(default=50, ge=1)

    # Encrypts `matchday backup` files (ADR 0010). Empty: backups refuse to run.
    backup_key: _BackupKey = SecretStr("")

    @field_validator("secret_key")
    @classmethod
    def _no_placeholder_secret(cls, v: SecretStr) -> SecretStr:
        value = v.get_secret_value()
        if value and (len(value) < 32 or value.lower() in _PLACEHOLDERS):
            raise ValueError("secret_key must be at least 32 random characters, not a placeholder")
        return v

    @field_validator("stripe_api_key", "stripe_backup_api_key")
    @classmethod
    def _real_stripe_key(cls, v: SecretStr) -> SecretStr:
        value = v.get_secret_value()
        if value and (not value.startswith(("sk_", "rk_")) or value.lower() in _PLACEHOLDERS):
            raise ValueError("a Stripe key starts with sk_ or rk_")
        return v

    @property
    def gateway_kind(self) -> Literal["test", "stripe"]:
        if self.payment_gateway is not None:
            return self.payment_gateway
        return "stripe" if self.stripe_api_key.get_secret_value() else "test"

    @model_validator(mode="after")
    def _ttl_bounds(self) -> Settings:
        if not self.min_ttl_s <= self.default_ttl_s <= self.max_ttl_s:
            raise ValueError("default_ttl_s must lie between min_ttl_s and max_ttl_s")
        if self.payment_gateway == "stripe" and not self.stripe_api_key.get_secret_value():
            raise ValueError("payment_gateway=stripe needs stripe_api_key")
        return self

    def payload(self) -> dict[str, Any]:
        """Everything, secrets included, as JSON types: how settings reach Ray actors and
        Serve replicas (``model_dump`` masks secrets, which would hand them a blank key)."""
        data = self.model_dump(mode="json")
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                data[name] = value.get_secret_value()
        return data

    def policy(self) -> Policy:
        return Policy(
            max_qty_per_request=self.max_qty_per_request,
            min_ttl_s=self.min_ttl_s,
            max_ttl_s=self.max_ttl_s,
        )
