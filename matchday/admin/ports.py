"""What the admin side needs from storage (matchday/storage/admin_repo.py implements every
one of these; each service takes only the part it uses)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from matchday.admin.records import (
    AuditEntry,
    ImportRecord,
    ImportRow,
    KeyInfo,
    KeyRecord,
    RowResult,
)
from matchday.inventory.records import SkuRow


class KeyStore(Protocol):
    """Operators' API keys, their TOTP secrets, used steps and failed attempts."""

    async def insert_key(
        self, key_id: str, name: str, secret_hash: bytes, totp_secret: str, at: float
    ) -> None: ...

    async def get_key(self, key_id: str) -> KeyRecord | None: ...

    async def list_keys(self) -> list[KeyInfo]: ...

    async def totp_rows(self) -> list[tuple[str, str]]:
        """(key id, stored TOTP secret) of every key, for re-sealing under a new key."""
        ...

    async def replace_totp(self, key_id: str, expected: str, stored: str) -> bool:
        """Replace a key's stored TOTP secret if it still holds ``expected``."""
        ...

    async def revoke_key(self, key_id: str, at: float) -> KeyInfo | None:
        """Revoke once; revoking again keeps the first revocation time."""
        ...

    async def accept_step(self, key_id: str, step: int) -> bool:
        """Record ``step`` as the last accepted TOTP step unless it is not newer than it.

        One conditional UPDATE, so two requests racing with the same code cannot both win.
        """
        ...

    async def record_failure(
        self, key_id: str, max_failures: int, locked_until: float
    ) -> float | None:
        """Count a failed attempt; the one that reaches ``max_failures`` locks the key until
        ``locked_until`` and restarts the count. Returns the lock's end if it locked now.
        """
        ...


class AuditStore(Protocol):
    """The audit log of admin actions."""

    async def insert_audit(
        self,
        at: float,
        key_id: str | None,
        action: str,
        target: str,
        request_id: str | None,
        params: dict[str, Any],
        outcome: str,
        client: str,
    ) -> int: ...

    async def recent_audit(self, limit: int, action: str | None = None) -> list[AuditEntry]: ...


class ImportStore(Protocol):
    """Stock imports: their rows, outcomes and reports."""

    async def existing_skus(self, skus: Sequence[str]) -> set[str]: ...

    async def get_import(self, import_id: str) -> ImportRecord | None: ...

    async def save_rejected(
        self,
        import_id: str,
        key_id: str | None,
        content_sha256: str,
        row_count: int,
        errors: list[Any],
        at: float,
    ) -> None:
        """Record a file refused by validation; a later attempt may replace it, since
        nothing of it was applied. An import already started is never overwritten.
        """
        ...

    async def start_import(
        self,
        import_id: str,
        key_id: str | None,
        content_sha256: str,
        rows: Sequence[ImportRow],
        at: float,
    ) -> bool:
        """Write the validated plan as pending, in one transaction. False when the import
        was started already (by a concurrent caller): nothing is written then.
        """
        ...

    async def import_rows(self, import_id: str, pending_only: bool = False) -> list[RowResult]: ...

    async def record_rows(
        self, import_id: str, answers: Sequence[tuple[int, str, dict[str, Any]]]
    ) -> None:
        """(line, applied|refused, result) for rows the engine answered."""
        ...

    async def finish_import(
        self, import_id: str, status: str, errors: list[Any], at: float
    ) -> None: ...


class StockRows(Protocol):
    """The engine's durable counters of SKUs, as last committed (absent: no such SKU)."""

    async def stock_rows(self, skus: list[str]) -> dict[str, SkuRow]: ...
