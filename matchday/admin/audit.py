"""The audit log of admin actions: who did what to which target, with what, and the outcome.

Append-only (a trigger refuses UPDATE, DELETE and TRUNCATE). Parameters are stored for
forensics, so anything that looks secret is redacted first: an audit log readable by many is
not a place for API keys or one-time codes, even used ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from matchday.admin.ports import AuditStore
from matchday.admin.records import AdminIdentity, AuditEntry
from matchday.domain.clock import Clock, SystemClock
from matchday.domain.errors import InvalidInput

REDACTED = "[redacted]"
# Deliberately broad: a redacted "error_code" costs a little forensic detail, a stored
# "totp_code" or "api_key" costs a credential.
_SECRET_NAME = re.compile(r"secret|password|passwd|token|key|code|authorization", re.I)
_SECRET_VALUE = re.compile(r"mdk_[0-9a-f]{16}_")  # an API key pasted into any field
_MAX_DEPTH = 6
_MAX_STRING = 1_000
_MAX_ITEMS = 200
_ACTION_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
MAX_RECENT = 1_000


def redact(value: Any, depth: int = 0) -> Any:
    """A JSON-able copy of ``value`` with secret-looking entries replaced, and bounded in
    size so that one request cannot bloat the log."""
    if depth > _MAX_DEPTH:
        return "[truncated]"
    if isinstance(value, Mapping):
        items = list(value.items())[:_MAX_ITEMS]
        return {
            str(k): REDACTED if _SECRET_NAME.search(str(k)) else redact(v, depth + 1)
            for k, v in items
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, depth + 1) for v in list(value)[:_MAX_ITEMS]]
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    if _SECRET_VALUE.search(text):
        return REDACTED
    return text if len(text) <= _MAX_STRING else text[:_MAX_STRING] + "[truncated]"


class AuditLog:
    def __init__(self, repo: AuditStore, clock: Clock | None = None) -> None:
        self.repo = repo
        self.clock = clock or SystemClock()

    async def record(
        self,
        identity: AdminIdentity | None,
        action: str,
        target: str = "",
        params: Mapping[str, Any] | None = None,
        outcome: str = "ok",
        request_id: str | None = None,
        client: str | None = None,
    ) -> int:
        """Append one entry; ``outcome`` is ``ok`` or the error's stable code. Returns its id.

        ``identity`` None means an action without an API key (the operator's CLI, or a
        request refused before it had an identity)."""
        if not _ACTION_RE.fullmatch(action):
            raise InvalidInput("action", "must be 1-64 of lowercase letters, digits, '_.-'")
        if client is None:
            client = identity.client if identity else ""
        return await self.repo.insert_audit(
            self.clock.now(),
            identity.key_id if identity else None,
            action,
            str(redact(target))[:_MAX_STRING],
            None if request_id is None else str(redact(request_id))[:_MAX_STRING],
            redact(dict(params or {})),
            outcome[:64],
            client[:256],
        )

    async def recent(self, limit: int = 50, action: str | None = None) -> list[AuditEntry]:
        """The newest entries first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RECENT:
            raise InvalidInput("limit", f"must be between 1 and {MAX_RECENT}")
        return await self.repo.recent_audit(limit, action)
