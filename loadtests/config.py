"""What a load test reads from the environment, in one place (every scenario documents it).

MATCHDAY_LT_HOST            default target when --host is not given (http://127.0.0.1:8000)
MATCHDAY_LT_ALLOW_REMOTE    1 to allow a non-loopback target (off: a typo must not load
                            someone's production shop)
MATCHDAY_LT_PEAK_USERS      users at the top of a stage table (100)
MATCHDAY_LT_TIME_SCALE      stage durations are multiplied by this (1.0; 0.1 = 10x faster)
MATCHDAY_LT_SHAPE           "off": ignore the stage table, run -u/-r/-t (the capacity
                            report does this to hold each step steady)
MATCHDAY_LT_THINK_SCALE     think times are multiplied by this (1.0; 0 = no pauses)
MATCHDAY_LT_HOT_SKU         the limited SKU bots hammer (JERSEY-FINAL-LTD-M)
MATCHDAY_LT_SKUS            comma-separated SKUs buyers pick from (default: discovered from
                            the catalogue, every variant of the first 100 products)
MATCHDAY_LT_SLUGS           comma-separated product slugs browsers open (default discovered)
MATCHDAY_LT_DECLINE_RATE    share of checkouts paid with a declined card (0.1)
MATCHDAY_LT_RETRIES         retries of a 429/503 POST with the same Idempotency-Key (1)
MATCHDAY_LT_ACK_DIR         where each process appends acknowledged adds and orders
                            (loadtests/out/acks); the audit reads every *.jsonl there
MATCHDAY_LT_ADMIN_KEY       admin API key for the restocking admin (none: admins idle)
MATCHDAY_LT_ADMIN_TOTP      its TOTP secret (from ``matchday admin create-key``)
MATCHDAY_LT_RESTOCK_QTY     units an admin adds to the hot SKU each time (10)
MATCHDAY_LT_RESTOCK_EVERY_S seconds between restocks (20)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw.strip() else default


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


def _list(name: str) -> list[str]:
    return [x.strip() for x in os.environ.get(name, "").split(",") if x.strip()]


@dataclass(frozen=True)
class LoadConfig:
    host: str = "http://127.0.0.1:8000"
    allow_remote: bool = False
    peak_users: int = 100
    time_scale: float = 1.0
    shape_off: bool = False
    think_scale: float = 1.0
    hot_sku: str = "JERSEY-FINAL-LTD-M"
    skus: list[str] = field(default_factory=list)
    slugs: list[str] = field(default_factory=list)
    decline_rate: float = 0.1
    retries: int = 1
    ack_dir: Path = Path("loadtests/out/acks")
    admin_key: str = ""
    admin_totp: str = ""
    restock_qty: int = 10
    restock_every_s: float = 20.0

    @classmethod
    def from_env(cls) -> LoadConfig:
        return cls(
            host=os.environ.get("MATCHDAY_LT_HOST", cls.host),
            allow_remote=os.environ.get("MATCHDAY_LT_ALLOW_REMOTE", "") == "1",
            peak_users=_int("MATCHDAY_LT_PEAK_USERS", cls.peak_users),
            time_scale=_float("MATCHDAY_LT_TIME_SCALE", cls.time_scale),
            shape_off=os.environ.get("MATCHDAY_LT_SHAPE", "").lower() == "off",
            think_scale=_float("MATCHDAY_LT_THINK_SCALE", cls.think_scale),
            hot_sku=os.environ.get("MATCHDAY_LT_HOT_SKU", cls.hot_sku),
            skus=_list("MATCHDAY_LT_SKUS"),
            slugs=_list("MATCHDAY_LT_SLUGS"),
            decline_rate=_float("MATCHDAY_LT_DECLINE_RATE", cls.decline_rate),
            retries=_int("MATCHDAY_LT_RETRIES", cls.retries),
            ack_dir=Path(os.environ.get("MATCHDAY_LT_ACK_DIR", str(cls.ack_dir))),
            admin_key=os.environ.get("MATCHDAY_LT_ADMIN_KEY", ""),
            admin_totp=os.environ.get("MATCHDAY_LT_ADMIN_TOTP", ""),
            restock_qty=_int("MATCHDAY_LT_RESTOCK_QTY", cls.restock_qty),
            restock_every_s=_float("MATCHDAY_LT_RESTOCK_EVERY_S", cls.restock_every_s),
        )


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def check_target(url: str | None, cfg: LoadConfig) -> str | None:
    """Why a load test must not be sent to ``url``, or None when it may."""
    if not url:
        return "no target host: pass --host http://127.0.0.1:8000"
    if not is_loopback(url) and not cfg.allow_remote:
        return f"refusing non-loopback target {url}: set MATCHDAY_LT_ALLOW_REMOTE=1 if you mean it"
    return None
