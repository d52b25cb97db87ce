"""What the waiting room needs from storage: drops (PostgreSQL), the queue (Redis), stock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from matchday.waitingroom.models import Drop, Located


class DropStore(Protocol):
    """Drops, durable (matchday/storage/drops_repo.py)."""

    async def create(self, drop: Drop) -> Drop:
        """Insert ``drop``; the same drop id again returns the first one. Conflict when one
        of its SKUs is in another drop that is not closed; InvalidInput for unknown SKUs."""
        ...

    async def get(self, drop_id: str) -> Drop | None: ...

    async def recent(self, limit: int) -> list[Drop]: ...

    async def set_state(self, drop_id: str, state: str, allowed: Sequence[str]) -> Drop | None:
        """Move a drop whose state is one of ``allowed`` to ``state``; None if it was not."""
        ...

    async def set_rate(self, drop_id: str, rate_per_s: float, source: str) -> Drop | None:
        """Change the rate (and where it came from) of a drop that is not closed; None if
        it is."""
        ...

    async def claim(self, drop: Drop) -> Drop | None:
        """Insert ``drop`` if neither its id nor any of its SKUs is taken by a drop that is
        not closed, and every SKU exists; None otherwise (another replica made it first).
        Never raises Conflict or InvalidInput."""
        ...

    async def live_auto(self) -> list[Drop]:
        """The automatic drops that are not closed."""
        ...

    async def live_skus(self) -> dict[str, str]:
        """SKU -> drop id, for every drop that is not closed."""
        ...


class QueueStore(Protocol):
    """The queue of one drop (matchday/waitingroom/redis_store.py). Every method is atomic."""

    async def ticket_of(self, drop_id: str, customer: str) -> int | None:
        """The place of the shopper's ticket, if it holds one."""
        ...

    async def count_address(self, drop_id: str, address: str, customer: str) -> int:
        """Record that ``customer`` joins from ``address``; how many distinct shoppers have."""
        ...

    async def file(self, drop_id: str, customer: str, place: int) -> int:
        """Give the shopper a ticket at ``place`` unless it holds one; the place it holds."""
        ...

    async def bump(self, drop_id: str, counter: str) -> None:
        """Count one more ``refused`` or ``behind`` join."""
        ...

    async def advance(
        self,
        drop_id: str,
        customer: str,
        now: float,
        *,
        admit: bool,
        rate_per_s: float,
        available: int,
        pass_ttl_s: float,
    ) -> Located:
        """Admit the lowest places the rate and the headroom allow (when ``admit``), then say
        where ``customer`` stands.

        Credit grows at ``rate_per_s`` since the last advance, capped at max(1, rate) fans;
        headroom is ``available`` minus the admitted fans whose pass is live and who have not
        taken a hold (:meth:`spent`)."""
        ...

    async def spent(self, drop_id: str, customer: str) -> None:
        """The admitted shopper took a hold: no longer counted against the headroom."""
        ...

    async def stats(self, drop_id: str, now: float) -> dict[str, int]:
        """waiting, admitted, pending, tickets, refused, behind."""
        ...


class DemandStore(Protocol):
    """Adds per SKU, summed over every replica in time buckets (redis_store.py)."""

    async def record(self, counts: Mapping[str, int], bucket: int, ttl_s: float) -> None:
        """Add this process's ``counts`` to ``bucket``'s totals."""
        ...

    async def totals(self, buckets: Sequence[int]) -> list[dict[str, int]]:
        """Every replica's adds per SKU, one mapping per bucket, in the order asked."""
        ...


class StockLevels(Protocol):
    async def levels(self, skus: Sequence[str]) -> tuple[int, int]:
        """(units available, units held in carts) over ``skus``."""
        ...
