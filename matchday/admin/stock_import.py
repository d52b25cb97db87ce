"""Batch stock import from CSV: validated all or nothing, applied idempotently and resumably.

Format (UTF-8, an Excel byte-order mark is accepted)::

    sku,action,quantity
    JERSEY-FINAL-LTD-M,restock,40      add 40 received units
    BOOTS-STRIKER-42,set,12            supplier sync: 12 units on hand and unsold

What is promised, and what is not:

- **Validation is all or nothing.** Every row is checked (header, size and row-count bounds,
  SKU syntax, SKU exists, action, quantity within ``Policy`` bounds, one row per SKU, exactly
  three non-blank columns, no card-number-like value) before any row is applied, and every
  problem is reported at once with its line number in one :class:`ImportRejected`. A file
  with one bad row changes nothing.
- **Application is idempotent and resumable, not atomic.** Rows go to the inventory engine
  one mutation each, with request id ``import:<import_id>:<line>``; the engine answers a
  repeated request id with its first answer, and each answer is recorded per row in
  PostgreSQL. Re-running the same import (same idempotency key, or same bytes) after a crash
  re-sends only the rows without a recorded answer, so nothing is applied twice.
- **The engine may still refuse a valid row** (e.g. a restock that would exceed the largest
  stock a SKU may hold, or a SKU removed since validation). The refusal is recorded on that
  row, the other rows are applied, and the import ends ``partial`` with the refusals listed.
  A ``set`` below the units carts hold is not refused: the engine revokes the newest holds
  (ADR 0003) and the row's result lists them.
- **Why no cross-shard atomic commit:** each SKU's counters are written only by the shard
  that owns it, in that shard's group commit (ADR 0001). Committing one import atomically
  would need two-phase commit across shards, holding every touched SKU's ledger (hot ones
  included, on match day) until the slowest shard voted: a stock import would stall sales.
  Validating everything first makes refusals rare; idempotent re-runs make crashes harmless.
- The engine remembers request ids in memory for its dedupe window and then looks them up in
  its journal only for a while after a restart. The rows in flight when a crash struck (at
  most one chunk) are safe if the import is re-run within that window (10 minutes by
  default); rows with a recorded answer are never re-sent, whenever the re-run happens.
- Without an idempotency key, the content hash is the import's identity: uploading the same
  bytes again returns the first import's report and applies nothing. To apply an identical
  file twice on purpose, send a different idempotency key each time.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import hashlib
import io
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from matchday.admin.ports import ImportStore
from matchday.admin.records import AdminIdentity, ImportRow, RowResult
from matchday.domain.cards import carries_pan
from matchday.domain.clock import Clock, SystemClock
from matchday.domain.errors import (
    Conflict,
    InvalidInput,
    MatchdayError,
    NotFound,
)
from matchday.inventory.commands import DEFAULT_POLICY, Policy, check_sku

HEADER = ["sku", "action", "quantity"]
ACTIONS = ("restock", "set")
_QUANTITY_RE = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit accepts "١٢"
_IDEMPOTENCY_RE = re.compile(r"[\x21-\x7e]{1,255}")
# Rows sent to the engine at once: the client coalesces them into a few shard batches, and a
# crash leaves at most this many rows without a recorded answer.
APPLY_CHUNK = 200
_MESSAGE_ERRORS = 50


@dataclass(frozen=True, slots=True)
class ImportLimits:
    max_bytes: int = 1 << 20
    max_rows: int = 10_000


class ImportRejected(MatchdayError):
    """The file failed validation; nothing was applied. ``errors`` holds every problem."""

    code = "invalid_import"
    http_status = 422

    def __init__(self, errors: Sequence[tuple[int, str]]) -> None:
        errors = [(int(line), str(message)) for line, message in errors]
        super().__init__(errors)
        self.errors = errors

    def __str__(self) -> str:
        shown = "; ".join(_line_text(line, msg) for line, msg in self.errors[:_MESSAGE_ERRORS])
        more = len(self.errors) - _MESSAGE_ERRORS
        tail = f"; and {more} more" if more > 0 else ""
        return f"import rejected, nothing applied ({len(self.errors)} problems): {shown}{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "errors": _error_records(self.errors)}


@dataclass(frozen=True, slots=True)
class ParsedImport:
    rows: list[ImportRow]
    errors: list[tuple[int, str]]
    data_lines: int


@dataclass(frozen=True, slots=True)
class ImportReport:
    import_id: str
    status: str  # applied | partial | pending
    row_count: int
    applied: int  # rows applied in total, over every run of this import
    sent: int  # rows sent to the engine by this run: 0 when re-running a finished import
    refused: list[dict[str, Any]] = field(default_factory=list)


class StockWriter(Protocol):
    """What the import needs from the inventory engine (``InventoryClient`` provides it)."""

    async def restock(self, request_id: str, sku: str, qty: int) -> object: ...

    async def set_on_hand(self, request_id: str, sku: str, units: int) -> object: ...


# -- validation (pure) ----------------------------------------------------------------------


def parse_import(
    data: bytes | str, policy: Policy = DEFAULT_POLICY, limits: ImportLimits = ImportLimits()
) -> ParsedImport:
    """Check everything that does not need the database; never raises on bad input."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > limits.max_bytes:
        return ParsedImport([], [(0, f"file larger than {limits.max_bytes} bytes")], 0)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return ParsedImport([], [(0, f"not UTF-8 text (byte {exc.start})")], 0)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[ImportRow] = []
    errors: list[tuple[int, str]] = []
    first_line: dict[str, int] = {}
    try:
        header = next(reader, None)
        if header is None:
            return ParsedImport([], [(0, "empty file")], 0)
        if header != HEADER:
            return ParsedImport([], [(1, f"header must be exactly {','.join(HEADER)}")], 0)
        count = 0
        for cells in reader:
            count += 1
            if count > limits.max_rows:
                return ParsedImport([], [(0, f"more than {limits.max_rows} rows")], count)
            line = reader.line_num
            problems = _check_row(cells, policy)
            if not problems:
                sku = cells[0]
                if sku in first_line:
                    problems.append(f"duplicate SKU {sku}, first on line {first_line[sku]}")
                else:
                    first_line[sku] = line
                    rows.append(ImportRow(line, sku, cells[1], int(cells[2])))
            errors.extend((line, p) for p in problems)
    except csv.Error as exc:
        errors.append((reader.line_num, f"malformed CSV: {exc}"))
        return ParsedImport([], errors, 0)
    if count == 0:
        errors.append((0, "no rows after the header"))
    return ParsedImport(rows, errors, count)


def _check_row(cells: list[str], policy: Policy) -> list[str]:
    if not cells:
        return ["blank line"]
    if any(carries_pan(cell) for cell in cells):
        # Before anything echoes a cell: the problems are stored with the rejected import.
        return ["a value looks like a card number: refused, and not repeated here"]
    if len(cells) != len(HEADER):
        return [f"expected 3 columns (sku,action,quantity), found {len(cells)}"]
    sku, action, quantity = cells
    problems = []
    try:
        check_sku(sku)
    except InvalidInput:
        problems.append(
            f"sku {_show(sku)} is not 1-64 letters, digits, '.', '_', '-'"
            if sku
            else "sku is blank"
        )
    if action not in ACTIONS:
        problems.append(f"action must be 'restock' or 'set', not {_show(action)}")
    if not _QUANTITY_RE.fullmatch(quantity):
        problems.append(f"quantity must be a whole number, not {_show(quantity)}")
    elif action in ACTIONS:
        low, high = (1, policy.max_restock) if action == "restock" else (0, policy.max_on_hand)
        if not low <= int(quantity) <= high:
            problems.append(f"{action} quantity must be between {low} and {high}")
    return problems


def check_known(rows: Sequence[ImportRow], known: Collection[str]) -> list[tuple[int, str]]:
    return [(r.line, f"unknown SKU {r.sku}") for r in rows if r.sku not in known]


def validate_import(
    data: bytes | str,
    known: Collection[str],
    policy: Policy = DEFAULT_POLICY,
    limits: ImportLimits = ImportLimits(),
) -> list[ImportRow]:
    """The rows to apply, or :class:`ImportRejected` listing every problem."""
    parsed = parse_import(data, policy, limits)
    errors = sorted(parsed.errors + check_known(parsed.rows, known))
    if errors:
        raise ImportRejected(errors)
    return parsed.rows


def import_id_for(content_sha256: str, idempotency_key: str | None = None) -> str:
    if idempotency_key is not None and not _IDEMPOTENCY_RE.fullmatch(idempotency_key):
        raise InvalidInput("idempotency_key", "must be 1-255 printable ASCII characters")
    basis = f"key:{idempotency_key}" if idempotency_key else f"content:{content_sha256}"
    return "imp-" + hashlib.sha256(basis.encode()).hexdigest()[:32]


def request_id_for(import_id: str, line: int) -> str:
    return f"import:{import_id}:{line}"


# -- application -----------------------------------------------------------------------------


class StockImporter:
    def __init__(
        self,
        repo: ImportStore,
        writer: StockWriter,
        policy: Policy = DEFAULT_POLICY,
        clock: Clock | None = None,
        limits: ImportLimits = ImportLimits(),
        chunk: int = APPLY_CHUNK,
    ) -> None:
        self.repo = repo
        self.writer = writer
        self.policy = policy
        self.clock = clock or SystemClock()
        self.limits = limits
        self.chunk = chunk

    async def run(
        self,
        data: bytes | str,
        identity: AdminIdentity | None = None,
        idempotency_key: str | None = None,
    ) -> ImportReport:
        """Validate and apply a CSV, or resume the same import; see the module docstring.

        Raises :class:`ImportRejected` (nothing applied), :class:`Conflict` (idempotency key
        reused for other content), or a retryable error from the engine or storage, after
        which the import is left pending and running it again resumes it.
        """
        raw = data.encode() if isinstance(data, str) else data
        sha = hashlib.sha256(raw).hexdigest()
        import_id = import_id_for(sha, idempotency_key)
        key_id = identity.key_id if identity else None
        existing = await self.repo.get_import(import_id)
        if existing is None or existing.status == "rejected":
            parsed = parse_import(raw, self.policy, self.limits)
            known = await self.repo.existing_skus([r.sku for r in parsed.rows])
            errors = sorted(parsed.errors + check_known(parsed.rows, known))
            if errors:
                await self.repo.save_rejected(
                    import_id,
                    key_id,
                    sha,
                    parsed.data_lines,
                    _error_records(errors),
                    self.clock.now(),
                )
                raise ImportRejected(errors)
            if not await self.repo.start_import(
                import_id, key_id, sha, parsed.rows, self.clock.now()
            ):
                existing = await self.repo.get_import(import_id)  # a concurrent run won
        if existing is not None and existing.status != "rejected":
            if existing.content_sha256 != sha:
                raise Conflict(f"idempotency key already used for other content ({import_id})")
            if existing.status != "pending":
                return await self.report(import_id, sent=0)
        pending = await self.repo.import_rows(import_id, pending_only=True)
        for start in range(0, len(pending), self.chunk):
            await self._apply(import_id, pending[start : start + self.chunk])
        rows = await self.repo.import_rows(import_id)
        refused = _refusals(rows)
        await self.repo.finish_import(
            import_id, "partial" if refused else "applied", refused, self.clock.now()
        )
        return await self.report(import_id, sent=len(pending))

    async def report(self, import_id: str, sent: int = 0) -> ImportReport:
        record = await self.repo.get_import(import_id)
        if record is None:
            raise NotFound("import", import_id)
        rows = await self.repo.import_rows(import_id)
        return ImportReport(
            import_id=import_id,
            status=record.status,
            row_count=record.row_count,
            applied=sum(r.status == "applied" for r in rows),
            sent=sent,
            refused=_refusals(rows),
        )

    async def _apply(self, import_id: str, rows: Sequence[RowResult]) -> None:
        answers = await asyncio.gather(
            *(self._send(import_id, r) for r in rows), return_exceptions=True
        )
        recorded: list[tuple[int, str, dict[str, Any]]] = []
        stop: BaseException | None = None
        for row, answer in zip(rows, answers, strict=True):
            if isinstance(answer, MatchdayError) and not answer.retryable:
                recorded.append(
                    (row.line, "refused", {"error": answer.code, "message": str(answer)})
                )
            elif isinstance(answer, BaseException):
                # Nothing known about this row: leave it pending for the re-run.
                stop = stop or answer
            else:
                recorded.append((row.line, "applied", _result_record(answer)))
        await self.repo.record_rows(import_id, recorded)
        if stop is not None:
            raise stop

    async def _send(self, import_id: str, row: RowResult) -> object:
        rid = request_id_for(import_id, row.line)
        if row.action == "restock":
            return await self.writer.restock(rid, row.sku, row.quantity)
        return await self.writer.set_on_hand(rid, row.sku, row.quantity)


def _result_record(value: object) -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        record: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(value), default=str))
        return record
    return {"value": str(value)}


def _refusals(rows: Sequence[RowResult]) -> list[dict[str, Any]]:
    return [
        {"line": r.line, "sku": r.sku, **(r.result or {})} for r in rows if r.status == "refused"
    ]


def _error_records(errors: Sequence[tuple[int, str]]) -> list[dict[str, Any]]:
    return [{"line": line, "message": message} for line, message in errors]


def _line_text(line: int, message: str) -> str:
    return f"line {line}: {message}" if line else message


def _show(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")
