"""In-memory stand-ins for the waiting room's ports (the semantics of redis_store.py's
scripts and drops_repo.py's statements), for unit tests without Redis or PostgreSQL."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from matchday.admin.records import AdminIdentity
from matchday.domain.errors import Conflict, Unavailable
from matchday.waitingroom.models import AUTO, CLOSED, Drop, Located


class FakeDrops:
    def __init__(self) -> None:
        self.drops: dict[str, Drop] = {}

    async def create(self, drop: Drop) -> Drop:
        if drop.drop_id in self.drops:
            return self.drops[drop.drop_id]
        taken = await self.live_skus()
        clash = [s for s in drop.skus if s in taken]
        if clash:
            raise Conflict(f"already in a drop: {', '.join(clash)}")
        self.drops[drop.drop_id] = drop
        return drop

    async def get(self, drop_id: str) -> Drop | None:
        return self.drops.get(drop_id)

    async def recent(self, limit: int) -> list[Drop]:
        return sorted(self.drops.values(), key=lambda d: -d.created_at)[:limit]

    async def set_state(self, drop_id: str, state: str, allowed: Sequence[str]) -> Drop | None:
        drop = self.drops.get(drop_id)
        if drop is None or drop.state not in allowed:
            return None
        self.drops[drop_id] = dataclasses.replace(drop, state=state)
        return self.drops[drop_id]

    async def set_rate(self, drop_id: str, rate_per_s: float, source: str) -> Drop | None:
        drop = self.drops.get(drop_id)
        if drop is None or drop.state == CLOSED:
            return None
        self.drops[drop_id] = dataclasses.replace(drop, rate_per_s=rate_per_s, rate_source=source)
        return self.drops[drop_id]

    async def claim(self, drop: Drop) -> Drop | None:
        if drop.drop_id in self.drops or set(drop.skus) & set(await self.live_skus()):
            return None
        self.drops[drop.drop_id] = drop
        return drop

    async def live_auto(self) -> list[Drop]:
        return [d for d in self.drops.values() if d.origin == AUTO and d.state != CLOSED]

    async def live_skus(self) -> dict[str, str]:
        return {s: d.drop_id for d in self.drops.values() if d.state != CLOSED for s in d.skus}


@dataclasses.dataclass
class _Queue:
    waiting: dict[str, int] = dataclasses.field(default_factory=dict)
    tickets: dict[str, int] = dataclasses.field(default_factory=dict)
    admitted: dict[str, float] = dataclasses.field(default_factory=dict)
    pending: dict[str, float] = dataclasses.field(default_factory=dict)
    addresses: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    counters: dict[str, int] = dataclasses.field(default_factory=dict)
    credit: float = 0.0
    last: float | None = None


class FakeQueue:
    def __init__(self) -> None:
        self.queues: dict[str, _Queue] = {}
        self.admissions: list[str] = []  # customers in the order they were admitted

    def _q(self, drop_id: str) -> _Queue:
        return self.queues.setdefault(drop_id, _Queue())

    def lose_everything(self) -> None:
        """What a Redis that restarts without its data does."""
        self.queues.clear()

    async def ticket_of(self, drop_id: str, customer: str) -> int | None:
        return self._q(drop_id).tickets.get(customer)

    async def count_address(self, drop_id: str, address: str, customer: str) -> int:
        seen = self._q(drop_id).addresses.setdefault(address, set())
        seen.add(customer)
        return len(seen)

    async def file(self, drop_id: str, customer: str, place: int) -> int:
        q = self._q(drop_id)
        if customer not in q.tickets:
            q.tickets[customer] = place
            if customer not in q.admitted:
                q.waiting[customer] = place
        return q.tickets[customer]

    async def bump(self, drop_id: str, counter: str) -> None:
        q = self._q(drop_id)
        q.counters[counter] = q.counters.get(counter, 0) + 1

    async def advance(
        self, drop_id: str, customer: str, now: float, *, admit: bool, rate_per_s: float,
        available: int, pass_ttl_s: float,
    ) -> Located:  # fmt: skip
        q = self._q(drop_id)
        q.pending = {c: t for c, t in q.pending.items() if t > now}
        burst = max(1.0, rate_per_s)
        last = now if q.last is None else q.last
        places = []
        if admit:
            q.credit = min(burst, q.credit + max(0.0, now - last) * rate_per_s)
            room = available - len(q.pending)
            n = max(0, min(math.floor(q.credit), room))
            for c in sorted(q.waiting, key=lambda c: (q.waiting[c], c))[:n]:
                del q.waiting[c]
                q.admitted[c] = now
                q.pending[c] = now + pass_ttl_s
                q.credit -= 1
                self.admissions.append(c)
                places.append(q.tickets.get(c, 0))
        q.last = max(last, now)
        n, done = len(q.waiting), tuple(places)
        if customer in q.admitted:
            return Located("admitted", admitted_at=q.admitted[customer], waiting=n,
                           admitted_places=done)  # fmt: skip
        if customer in q.waiting:
            rank = sum(1 for c, p in q.waiting.items() if (p, c) < (q.waiting[customer], customer))
            return Located("waiting", rank=rank, waiting=n, admitted_places=done)
        return Located("unknown", waiting=n, admitted_places=done)

    async def spent(self, drop_id: str, customer: str) -> None:
        self._q(drop_id).pending.pop(customer, None)

    async def stats(self, drop_id: str, now: float) -> dict[str, int]:
        q = self._q(drop_id)
        return {
            "waiting": len(q.waiting),
            "admitted": len(q.admitted),
            "pending": sum(1 for t in q.pending.values() if t > now),
            "tickets": len(q.tickets),
            "refused": q.counters.get("refused", 0),
            "behind": q.counters.get("behind", 0),
        }


class FakeStock:
    def __init__(self, available: int = 0, held: int = 0) -> None:
        self.available = available
        self.held = held

    async def levels(self, skus: Sequence[str]) -> tuple[int, int]:
        return self.available, self.held


class FakeDemand:
    """RedisDemand's semantics: counts summed per bucket over every replica; ``down`` fails
    every call as Redis away does."""

    def __init__(self) -> None:
        self.buckets: dict[int, dict[str, int]] = {}
        self.down = False

    async def record(self, counts: Mapping[str, int], bucket: int, ttl_s: float) -> None:
        if self.down:
            raise Unavailable("the waiting room's queue is not answering")
        into = self.buckets.setdefault(bucket, {})
        for sku, n in counts.items():
            into[sku] = into.get(sku, 0) + n

    async def totals(self, buckets: Sequence[int]) -> list[dict[str, int]]:
        if self.down:
            raise Unavailable("the waiting room's queue is not answering")
        return [dict(self.buckets.get(b, {})) for b in buckets]


class FakeAudit:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str, dict[str, Any]]] = []  # client, action, target
        self.down = False

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
        if self.down:
            raise Unavailable("the audit log is not answering")
        who = identity.client if identity else ""
        self.entries.append((who, action, target, dict(params or {})))
        return len(self.entries)
