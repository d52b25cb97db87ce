"""What the supplier side reads, writes and answers. Timestamps are epoch seconds."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from matchday.domain.errors import MatchdayError, Unauthorized

Kind = Literal["level", "delta"]
LEVEL: Kind = "level"
DELTA: Kind = "delta"
FORMATS = ("json", "csv")

SUPPLIER_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
# A supplier's own SKU: printable ASCII, no leading or trailing blank. Wider than matchday's
# SKU syntax on purpose: suppliers name things their own way, the mapping translates.
SUPPLIER_SKU_RE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,62}[\x21-\x7e])?")
MESSAGE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

# The most units one line may claim unless the supplier is configured otherwise: a count
# above it is a lie or a typo (a warehouse with a million of one jersey is not a warehouse).
DEFAULT_MAX_UNITS = 100_000
MAX_UNITS_CAP = 1_000_000  # the engine's largest restock (Policy.max_restock)


@dataclass(frozen=True, slots=True)
class FeedLine:
    """One well-formed line of a message or feed: ``qty`` >= 0 for a level, != 0 for a delta.

    ``line`` is the 1-based position in a JSON message's ``lines`` or the CSV file's line."""

    line: int
    supplier_sku: str
    kind: Kind
    qty: int


@dataclass(frozen=True, slots=True)
class Supplier:
    supplier_id: str
    name: str
    feed_url: str | None
    feed_format: str
    pull_every_s: int | None
    max_units: int
    active: bool
    created_at: float
    updated_at: float
    etag: str | None = None
    last_modified: str | None = None
    last_pulled_at: float | None = None

    def public(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class SealedSecrets:
    """A supplier's sealed signing secrets: the current one, and the one it replaced while
    its grace period lasts. Never leaves the supplier package opened."""

    current: str
    previous: str | None = None
    previous_until: float | None = None


@dataclass(frozen=True, slots=True)
class Mapping:
    supplier_sku: str
    sku: str
    level_as_of: float | None = None  # the as-of time of the last level applied through it


@dataclass(frozen=True, slots=True)
class Counters:
    """A SKU's durable counters, as of the engine's last group commit."""

    on_hand: int
    reserved: int
    sold: int

    @property
    def unsold(self) -> int:
        """What ``set_on_hand`` sets: units present and not yet sold (ADR 0003)."""
        return self.on_hand - self.sold


@dataclass(frozen=True, slots=True)
class Plan:
    """How a unit decrease is applied (``apply`` says why): the unsold units to set, and the
    units sold when that was computed. Stored before the engine is called, so a re-run after
    a crash sends the same mutation rather than a second decrease."""

    units: int
    sold: int


@dataclass(frozen=True, slots=True)
class LineResult:
    """What one line came to. ``status``: applied, unchanged or rejected (``reason`` says
    why: unmapped, unknown_sku, stale, duplicate_sku, or the engine's error code).
    ``drift``: matchday's unsold units minus the supplier's level, before it was applied."""

    line: int
    supplier_sku: str
    sku: str | None
    kind: str
    qty: int
    status: str
    reason: str | None = None
    message: str | None = None
    before: int | None = None
    after: int | None = None
    drift: int | None = None
    revoked: tuple[str, ...] = field(default=())

    def record(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__slots__}
        out["revoked"] = list(self.revoked)
        return {k: v for k, v in out.items() if v is not None and v != []}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> LineResult:
        values = dict(record)
        values["revoked"] = tuple(values.get("revoked", ()))
        return cls(**values)


def levels_standing(results: Sequence[LineResult]) -> list[str]:
    """Supplier SKUs whose level now stands (applied, or already equal): their mappings
    remember its as-of time, so an older line is stale from now on."""
    return [
        r.supplier_sku for r in results if r.kind == LEVEL and r.status in ("applied", "unchanged")
    ]


def tally(results: Sequence[LineResult]) -> dict[str, int]:
    counts = {"applied": 0, "unchanged": 0, "rejected": 0}
    for r in results:
        counts[r.status] += 1
    return counts


# -- errors ---------------------------------------------------------------------------------


class InvalidSignature(Unauthorized):
    """A push whose signature, timestamp or secret does not check out. Nothing was read."""

    code = "invalid_signature"


class FeedRejected(MatchdayError):
    """A message or feed with malformed lines: nothing of it was applied; ``errors`` lists
    every problem as (line, message), line 0 for the whole document."""

    code = "invalid_feed"
    http_status = 422
    SHOWN = 20

    def __init__(self, errors: Sequence[tuple[int, str]]) -> None:
        errors = [(int(line), str(message)) for line, message in errors]
        super().__init__(errors)
        self.errors = errors

    def __str__(self) -> str:
        shown = "; ".join(f"line {n}: {m}" if n else m for n, m in self.errors[: self.SHOWN])
        more = len(self.errors) - self.SHOWN
        tail = f"; and {more} more" if more > 0 else ""
        return f"feed rejected, nothing applied ({len(self.errors)} problems): {shown}{tail}"

    def records(self) -> list[dict[str, Any]]:
        return [{"line": line, "message": message} for line, message in self.errors]

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "errors": self.records()}


# -- stored records ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageRecord:
    body_sha256: str
    status: str  # pending | done
    plans: dict[int, Plan]
    answer: dict[str, Any] | None


SYNC_OPEN = ("queued", "running")


@dataclass(frozen=True, slots=True)
class SyncRecord:
    sync_id: str
    supplier_id: str
    source: str  # pull | upload
    status: str  # queued | running | done | cancelled | rejected
    forced: bool
    content_sha256: str
    as_of: float
    total_lines: int
    cursor: int
    applied: int
    unchanged: int
    rejected: int
    queued_by: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    report: dict[str, Any] | None

    @property
    def progress(self) -> float:
        """The share of lines with an outcome."""
        done = self.applied + self.unchanged + self.rejected
        return round(done / self.total_lines, 4) if self.total_lines else 1.0

    def public(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__slots__}
        out["progress"] = self.progress
        return out
