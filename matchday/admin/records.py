"""What the admin side reads from and writes to storage. Timestamps are epoch seconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class AdminIdentity:
    """Who is acting: an authenticated API key, or (key_id None) the operator's CLI."""

    key_id: str | None
    name: str
    client: str = ""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A stored key, secrets included: never leaves ``matchday.admin.auth``."""

    key_id: str
    name: str
    secret_hash: bytes
    totp_secret: str
    created_at: float
    revoked_at: float | None
    last_totp_step: int | None
    failed_attempts: int
    locked_until: float | None


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as ``list_keys`` shows it: no secret, no hash."""

    key_id: str
    name: str
    created_at: float
    revoked_at: float | None
    locked_until: float | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    key_id: str | None
    action: str
    target: str
    request_id: str | None
    params: dict[str, Any]
    outcome: str
    client: str


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One validated CSV line: ``action`` is ``restock`` or ``set``."""

    line: int
    sku: str
    action: str
    quantity: int


@dataclass(frozen=True, slots=True)
class RowResult:
    """A row of a started import: pending until the engine answered it."""

    line: int
    sku: str
    action: str
    quantity: int
    status: str  # pending | applied | refused
    result: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ImportRecord:
    import_id: str
    key_id: str | None
    content_sha256: str
    status: str  # pending | applied | partial | rejected
    row_count: int
    created_at: float
    finished_at: float | None
    errors: list[Any] = field(default_factory=list)
