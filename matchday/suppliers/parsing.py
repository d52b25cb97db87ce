"""Push messages and feeds into lines: pure, never raises on bad input, reports every problem.

A **push message** (JSON)::

    {"message_id": "m-000123", "as_of": 1796000000,
     "lines": [{"sku": "ADI-GS-42", "level": 12}, {"sku": "ADI-GS-43", "delta": -2}]}

A **feed** (pulled from a supplier's URL, or uploaded for a bulk sync) is the same JSON
without ``message_id`` (a bare list of lines is accepted too), or CSV with the header
``sku,level`` (a full feed: absolute levels) or ``sku,delta`` (changes)::

    sku,level
    ADI-GS-42,12

``sku`` is the supplier's own SKU (the mapping translates it); a ``level`` is the units the
supplier holds and has not sold (>= 0), a ``delta`` a change (non-zero). ``as_of`` (epoch
seconds, optional: the signed timestamp or the time of the download otherwise) is when the
supplier counted: a line older than the last level applied for its SKU is stale (``apply``).

Validation is all or nothing (ADR 0025): a line that is not a whole number, a negative level,
a number above the supplier's ``max_units`` (a lie or a typo), a supplier SKU twice, all make
the whole document malformed and every problem is listed. A malformed feed applies nothing.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
from dataclasses import dataclass
from typing import Any

from matchday.suppliers.model import (
    DELTA,
    LEVEL,
    MESSAGE_ID_RE,
    SUPPLIER_SKU_RE,
    FeedLine,
    Kind,
)
from matchday.web import strict_json

MAX_PUSH_LINES = 1_000
MAX_FEED_LINES = 1_000_000
# Problems listed at most: enough to fix a feed by, bounded for a 100k-line disaster.
MAX_ERRORS = 1_000
CSV_HEADERS: dict[tuple[str, ...], Kind] = {("sku", LEVEL): LEVEL, ("sku", DELTA): DELTA}
_DIGITS_RE = re.compile(r"-?[0-9]{1,12}")
Errors = list[tuple[int, str]]


@dataclass(frozen=True, slots=True)
class Parsed:
    lines: list[FeedLine]
    errors: list[tuple[int, str]]
    message_id: str | None = None
    as_of: float | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_message(body: bytes, max_units: int, *, max_lines: int = MAX_PUSH_LINES) -> Parsed:
    """A push message; ``message_id`` is required."""
    doc, errors = _json(body)
    if errors:
        return Parsed([], errors)
    if not isinstance(doc, dict):
        return Parsed([], [(0, "the message must be a JSON object")])
    message_id = doc.get("message_id")
    if not isinstance(message_id, str) or not MESSAGE_ID_RE.fullmatch(message_id):
        errors.append((0, "message_id must be 1-128 letters, digits, '.', '_', ':', '-'"))
        message_id = None
    parsed = _document(doc, max_units, max_lines, {"message_id", "as_of", "lines"})
    return Parsed(parsed.lines, errors + parsed.errors, message_id, parsed.as_of)


def parse_feed(data: bytes, fmt: str, max_units: int, *, max_lines: int = MAX_FEED_LINES) -> Parsed:
    """A pulled or uploaded feed, ``fmt`` ``json`` or ``csv``."""
    if fmt == "csv":
        return _csv(data, max_units, max_lines)
    doc, errors = _json(data, bom_ok=True)
    if errors:
        return Parsed([], errors)
    if isinstance(doc, list):
        doc = {"lines": doc}
    if not isinstance(doc, dict):
        return Parsed([], [(0, "the feed must be a JSON object or a list of lines")])
    return _document(doc, max_units, max_lines, {"as_of", "lines"})


def _json(body: bytes, *, bom_ok: bool = False) -> tuple[Any, Errors]:
    """One meaning per document, as every app reads JSON (``strict_json``): UTF-8 only, no
    duplicate keys (``{"level": 1, "level": 900}``), no NaN. A downloaded feed may start with
    a byte-order mark (spreadsheet exports do); a signed push may not."""
    if bom_ok and body.startswith(codecs.BOM_UTF8):
        body = body[len(codecs.BOM_UTF8) :]
    try:
        return strict_json.loads(body), []
    except ValueError as exc:
        return None, [(0, f"not JSON: {str(exc)[:120]}")]


def _document(doc: dict[str, Any], max_units: int, max_lines: int, allowed: set[str]) -> Parsed:
    errors: Errors = []
    extra = sorted(set(doc) - allowed)
    if extra:
        errors.append((0, f"unknown fields: {', '.join(map(str, extra))[:200]}"))
    as_of = doc.get("as_of")
    if as_of is not None and not _is_time(as_of):
        errors.append((0, "as_of must be epoch seconds"))
        as_of = None
    items = doc.get("lines")
    if not isinstance(items, list) or not items:
        return Parsed([], [*errors, (0, "lines must be a non-empty list")])
    if len(items) > max_lines:
        return Parsed([], [*errors, (0, f"more than {max_lines} lines")])
    lines: list[FeedLine] = []
    first: dict[str, int] = {}
    for n, item in enumerate(items, start=1):
        line, problems = _json_line(n, item, max_units)
        problems += _duplicate(item.get("sku") if isinstance(item, dict) else None, n, first)
        if problems:
            _add(errors, n, problems)
        elif line is not None:
            lines.append(line)
    when = None if as_of is None else float(as_of)
    return Parsed(lines if not errors else [], errors, None, when)


def _json_line(n: int, item: Any, max_units: int) -> tuple[FeedLine | None, list[str]]:
    if not isinstance(item, dict):
        return None, ["a line must be an object with sku and level or delta"]
    keys = set(item)
    kinds = [k for k in (LEVEL, DELTA) if k in keys]
    problems = []
    unknown = sorted(map(str, keys - {"sku", LEVEL, DELTA}))
    if unknown:
        problems.append(f"unknown fields: {', '.join(unknown)[:120]}")
    if len(kinds) != 1:
        problems.append("give exactly one of level or delta")
    sku = item.get("sku")
    problems += _sku_problems(sku)
    if len(kinds) == 1:
        problems += _qty_problems(kinds[0], item[kinds[0]], max_units)
    if problems:
        return None, problems
    assert isinstance(sku, str)
    return FeedLine(n, sku, kinds[0], int(item[kinds[0]])), []


def _csv(data: bytes, max_units: int, max_lines: int) -> Parsed:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Parsed([], [(0, f"not UTF-8 (byte {exc.start})")])
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    errors: Errors = []
    lines: list[FeedLine] = []
    first: dict[str, int] = {}
    count = 0
    try:
        header = tuple(c.strip().lower() for c in next(reader, []))
        kind = CSV_HEADERS.get(header)
        if kind is None:
            return Parsed([], [(1, "the header must be sku,level or sku,delta")])
        for cells in reader:
            n = reader.line_num
            count += 1
            if count > max_lines:
                return Parsed([], [(0, f"more than {max_lines} lines")])
            line, problems = _csv_line(n, cells, kind, max_units)
            problems += _duplicate(cells[0] if cells else None, n, first)
            if problems:
                _add(errors, n, problems)
            elif line is not None:
                lines.append(line)
    except csv.Error as exc:
        return Parsed([], [*errors, (reader.line_num, f"malformed CSV: {exc}")])
    if not lines and not errors:
        errors.append((0, "no lines after the header"))
    return Parsed(lines if not errors else [], errors)


def _csv_line(
    n: int, cells: list[str], kind: Kind, max_units: int
) -> tuple[FeedLine | None, list[str]]:
    if len(cells) != 2:
        return None, [f"expected 2 columns (sku,{kind}), found {len(cells)}"]
    sku, qty = cells[0], cells[1].strip()
    problems = _sku_problems(sku)
    if not _DIGITS_RE.fullmatch(qty):
        problems.append(f"{kind} must be a whole number, not {_show(qty)}")
    else:
        problems += _qty_problems(kind, int(qty), max_units)
    return (None, problems) if problems else (FeedLine(n, sku, kind, int(qty)), [])


def _sku_problems(sku: object) -> list[str]:
    if isinstance(sku, str) and SUPPLIER_SKU_RE.fullmatch(sku):
        return []
    return [f"sku must be 1-64 printable ASCII characters, not {_show(sku)}"]


def _qty_problems(kind: Kind, value: object, max_units: int) -> list[str]:
    # bool is an int; 12.0 is a float: neither is a count of jerseys.
    if not isinstance(value, int) or isinstance(value, bool):
        return [f"{kind} must be a whole number, not {_show(value)}"]
    if kind == LEVEL and value < 0:
        return [f"level must not be negative ({value})"]
    if kind == DELTA and value == 0:
        return ["delta must not be 0"]
    if abs(value) > max_units:
        return [f"{kind} {value} is beyond this supplier's bound of {max_units} units"]
    return []


def _duplicate(sku: object, n: int, first: dict[str, int]) -> list[str]:
    """A SKU seen on an earlier line, whatever else is wrong with either line."""
    if not isinstance(sku, str) or not SUPPLIER_SKU_RE.fullmatch(sku):
        return []
    seen = first.setdefault(sku, n)
    return [] if seen == n else [f"sku {sku} again (first on line {seen})"]


def _add(errors: Errors, n: int, problems: list[str]) -> None:
    if len(errors) < MAX_ERRORS:
        errors.append((n, "; ".join(problems)))


def _is_time(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 < value < 1e11
    )


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."
