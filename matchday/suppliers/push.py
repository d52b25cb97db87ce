"""A supplier's signed push: verified, validated whole, idempotent by message id, applied.

In order, each step refusing before anything is stored:

1. the supplier exists (404) and the signature and timestamp check out under its secret
   (401, ``signing``); a deactivated supplier is refused (403);
2. the message is well formed, every line (422 listing every problem, ``parsing``);
3. the message id is claimed in PostgreSQL with the body's hash: the same id with the same
   body answers the first answer (or finishes an attempt that died), with another body 409;
4. each line is applied through the engine (``apply``); unmapped, unknown and stale lines
   and the engine's refusals are reported per line, never fatal to the others;
5. the answer is stored, so every retry of the message gets it.

A failure of PostgreSQL or the engine in step 4 answers a retryable 503 and leaves the
message pending: a retry re-sends the same request ids, which the engine answers with its
first answers, so no line is applied twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from matchday.domain.clock import Clock, SystemClock
from matchday.domain.errors import Conflict, Forbidden, MatchdayError, NotFound
from matchday.metrics import NOOP, SUPPLIER_MESSAGES, Metrics
from matchday.suppliers.apply import Applier
from matchday.suppliers.model import FeedRejected, levels_standing, tally
from matchday.suppliers.parsing import parse_message
from matchday.suppliers.ports import SupplierStore
from matchday.suppliers.signing import WINDOW_S, SecretSeal, verify
from matchday.suppliers.stats import count_lines


@dataclass(frozen=True, slots=True)
class PushAnswer:
    body: dict[str, Any]
    replayed: bool = False


class PushService:
    def __init__(
        self,
        repo: SupplierStore,
        applier: Applier,
        seal: SecretSeal,
        *,
        clock: Clock | None = None,
        window_s: float = WINDOW_S,
        metrics: Metrics = NOOP,
    ) -> None:
        self.repo = repo
        self.applier = applier
        self.seal = seal
        self.clock = clock or SystemClock()
        self.window_s = window_s
        self.metrics = metrics

    async def receive(
        self, supplier_id: str, body: bytes, timestamp: str | None, signature: str | None
    ) -> PushAnswer:
        try:
            answer = await self._receive(supplier_id, body, timestamp, signature)
        except MatchdayError as exc:
            if not isinstance(exc, NotFound):  # an unknown id is no series of its own
                self._count(supplier_id, exc.code)
            raise
        self._count(supplier_id, "replayed" if answer.replayed else "ok")
        return answer

    async def _receive(
        self, supplier_id: str, body: bytes, timestamp: str | None, signature: str | None
    ) -> PushAnswer:
        now = self.clock.now()
        supplier = await self.repo.get_supplier(supplier_id)
        stored = await self.repo.sealed_secrets(supplier_id)
        if supplier is None or stored is None:
            raise NotFound("supplier", supplier_id)
        candidates = self.seal.open_all(supplier_id, stored[1], now)
        signed_at = verify(candidates, signature, timestamp, body, now, self.window_s)
        if not supplier.active:
            raise Forbidden(f"supplier {supplier_id} is deactivated")
        parsed = parse_message(body, supplier.max_units)
        if not parsed.ok or parsed.message_id is None:
            raise FeedRejected(parsed.errors)
        message_id = parsed.message_id
        as_of = parsed.as_of if parsed.as_of is not None else float(signed_at)
        sha = hashlib.sha256(body).hexdigest()
        scope = (supplier_id, "push", message_id)
        mappings = await self.repo.mappings(supplier_id, [ln.supplier_sku for ln in parsed.lines])
        prepared = await self.applier.prepare(scope, parsed.lines, mappings, as_of, {})
        first = await self.repo.claim_message(supplier_id, message_id, sha, prepared.plans, now)
        if first is not None:
            if first.body_sha256 != sha:
                raise Conflict(f"message id {message_id} was already used for another body")
            if first.status == "done" and first.answer is not None:
                return PushAnswer(first.answer, replayed=True)
            # An earlier attempt died (or still runs): finish it with its own plans.
            prepared = await self.applier.prepare(scope, parsed.lines, mappings, as_of, first.plans)
        results, failure = await self.applier.execute(prepared.todo)
        if failure is not None:
            raise failure
        lines = sorted([*prepared.done, *results], key=lambda r: r.line)
        await self.repo.note_levels(supplier_id, levels_standing(lines), as_of)
        answer = {
            "supplier_id": supplier_id,
            "message_id": message_id,
            "as_of": as_of,
            **tally(lines),
            "lines": [r.record() for r in lines],
        }
        await self.repo.finish_message(supplier_id, message_id, answer, self.clock.now())
        count_lines(self.metrics, supplier_id, lines)
        return PushAnswer(answer)

    def _count(self, supplier_id: str, outcome: str) -> None:
        self.metrics.inc(SUPPLIER_MESSAGES, tags={"supplier": supplier_id, "outcome": outcome})
