"""Mapped supplier lines through the inventory engine, and what each came to.

- A **level** is the engine's supplier sync, ``set_on_hand(units)``: units present and
  unsold, reconciled with live holds (the newest are revoked when the count falls below
  them, ADR 0003). A level equal to matchday's count costs no engine call (``unchanged``).
- A **delta up** is ``restock(qty)``: exact, and atomic in the engine.
- A **delta down** is ``adjust(delta)``: the engine lowers the units present and unsold by
  it (not below 0) against its own count, in the same step, and reconciles live holds as a
  count does. Nothing is read first, so a sale or a restock made meanwhile cannot be lost
  (ADR 0028; before it, a read-then-``set_on_hand`` with a correction for sales lost a
  concurrent restock). Plans (``Plan``) are no longer made: a re-run of a line resends
  the same request id and gets the engine's first answer. A plan stored by an older
  release is ignored for the same reason.

Every engine call carries a request id derived from (supplier, source, message or sync,
line), so a retried message or a resumed sync never applies a line twice. Supplier data is
never written anywhere but through the engine.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping as MappingOf
from collections.abc import Sequence
from dataclasses import dataclass

from matchday.domain.errors import MatchdayError
from matchday.suppliers.model import (
    LEVEL,
    Counters,
    FeedLine,
    LineResult,
    Mapping,
    Plan,
)
from matchday.suppliers.ports import CounterReader, StockAnswer, StockEngine


def request_id(supplier_id: str, source: str, ref: str, line: int) -> str:
    """The engine request id of one line: 28 characters whatever the ids' lengths."""
    basis = "\0".join((supplier_id, source, ref, str(line))).encode()
    return "sup:" + hashlib.blake2b(basis, digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class Todo:
    """A line that needs the engine."""

    line: FeedLine
    sku: str
    rid: str
    before: Counters


@dataclass(frozen=True, slots=True)
class Prepared:
    done: list[LineResult]  # decided without the engine: rejected or unchanged
    todo: list[Todo]
    plans: dict[int, Plan]  # always empty since ADR 0028 (kept for the stores' interface)


class Applier:
    def __init__(self, engine: StockEngine, reader: CounterReader) -> None:
        self.engine = engine
        self.reader = reader
        self.sent = 0  # engine calls made: the load probe leaves them out of the shop's load

    async def prepare(
        self,
        scope: tuple[str, str, str],
        lines: Sequence[FeedLine],
        mappings: MappingOf[str, Mapping],
        as_of: float,
        plans: MappingOf[int, Plan],
    ) -> Prepared:
        """Decide what needs no engine call; plan the rest. ``scope`` is (supplier id,
        source, message or sync id); ``plans`` (stored by an older release) are ignored."""
        done: list[LineResult] = []
        mapped: list[tuple[FeedLine, str]] = []
        for ln in lines:
            m = mappings.get(ln.supplier_sku)
            if m is None:
                done.append(_rejected(ln, None, "unmapped", "no mapping for this supplier SKU"))
            elif m.level_as_of is not None and as_of < m.level_as_of:
                done.append(_rejected(ln, m.sku, "stale", "older than the last level applied"))
            else:
                mapped.append((ln, m.sku))
        counters = await self.reader.counters({sku for _, sku in mapped}) if mapped else {}
        todo: list[Todo] = []
        for ln, sku in mapped:
            before = counters.get(sku)
            if before is None:
                done.append(_rejected(ln, sku, "unknown_sku", f"no inventory for SKU {sku}"))
            elif ln.kind == LEVEL and before.unsold == ln.qty:
                done.append(_result(ln, sku, "unchanged", before, before.unsold, drift=0))
            else:
                todo.append(Todo(ln, sku, request_id(*scope, ln.line), before))
        return Prepared(done, todo, {})

    async def execute(self, todo: Sequence[Todo]) -> tuple[list[LineResult], BaseException | None]:
        """Send every line (the client coalesces them into shard batches). Lines the engine
        answered get a result; the first retryable failure is returned, its lines left
        without one so that a re-run sends them again (same request ids)."""
        answers = await asyncio.gather(*(self._send(t) for t in todo), return_exceptions=True)
        results: list[LineResult] = []
        failure: BaseException | None = None
        for t, answer in zip(todo, answers, strict=True):
            if isinstance(answer, MatchdayError) and not answer.retryable:
                results.append(_rejected(t.line, t.sku, answer.code, str(answer)))
            elif isinstance(answer, BaseException):
                failure = failure or answer
            else:
                drift = t.before.unsold - t.line.qty if t.line.kind == LEVEL else None
                results.append(
                    _result(
                        t.line,
                        t.sku,
                        "applied",
                        t.before,
                        answer.on_hand - answer.sold,
                        drift=drift,
                        revoked=tuple(answer.revoked),
                    )
                )
        return results, failure

    async def _send(self, t: Todo) -> StockAnswer:
        ln = t.line
        self.sent += 1
        if ln.kind == LEVEL:
            return await self.engine.set_on_hand(t.rid, t.sku, ln.qty)
        if ln.qty > 0:
            return await self.engine.restock(t.rid, t.sku, ln.qty)
        return await self.engine.adjust(t.rid, t.sku, ln.qty)


def _result(
    ln: FeedLine,
    sku: str,
    status: str,
    before: Counters,
    after: int,
    *,
    drift: int | None = None,
    revoked: tuple[str, ...] = (),
) -> LineResult:
    return LineResult(
        ln.line,
        ln.supplier_sku,
        sku,
        ln.kind,
        ln.qty,
        status,
        before=before.unsold,
        after=after,
        drift=drift,
        revoked=revoked,
    )


def _rejected(ln: FeedLine, sku: str | None, reason: str, message: str) -> LineResult:
    return LineResult(
        ln.line, ln.supplier_sku, sku, ln.kind, ln.qty, "rejected", reason, message[:300]
    )
