"""All SQL of polls, votes and offer redemptions (007_polls.sql)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from matchday.domain.errors import InvalidInput
from matchday.polls.models import CLOSED, OfferTerms, Poll, PollIn, PollOption
from matchday.polls.offers import parse_poll_id
from matchday.polls.ports import VoteRow
from matchday.storage.db import StorageConnection

_POLL_COLUMNS = (
    "poll_id, question, placement, status, extract(epoch FROM closes_at),"
    " extract(epoch FROM created_at), offer_percent_off, offer_product_id, offer_valid_s"
)


def _poll(row: tuple[Any, ...], options: list[PollOption]) -> Poll:
    offer = OfferTerms(int(row[6]), row[7], int(row[8])) if row[6] is not None else None
    return Poll(
        poll_id=row[0],
        question=row[1],
        placement=row[2],
        status=row[3],
        closes_at=float(row[4]) if row[4] is not None else None,
        created_at=float(row[5]),
        options=tuple(options),
        offer=offer,
    )


class PollsRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    # -- polls ---------------------------------------------------------------------------------

    async def create(self, poll_id: str, spec: PollIn, created_by: str | None) -> Poll:
        """Insert the poll (the same ``poll_id`` again returns the first one unchanged)."""
        skus = sorted({o.sku for o in spec.options if o.sku})
        async with StorageConnection(self.pool, "polls") as conn, conn.transaction():
            products = await self._products_of(conn, skus)
            missing = [s for s in skus if s not in products]
            if missing:
                raise InvalidInput("options.sku", f"no such SKU: {', '.join(missing)}")
            offer = spec.offer
            if offer and offer.product_slug:
                found = await (
                    await conn.execute(
                        "SELECT 1 FROM products WHERE product_id = %s", (offer.product_slug,)
                    )
                ).fetchone()
                if found is None:
                    raise InvalidInput(
                        "offer.product_slug", f"no such product: {offer.product_slug}"
                    )
            inserted = await (
                await conn.execute(
                    "INSERT INTO polls (poll_id, question, placement, closes_at, created_by,"
                    " offer_percent_off, offer_product_id, offer_valid_s)"
                    " VALUES (%s, %s, %s, to_timestamp(%s::float8), %s, %s, %s, %s)"
                    " ON CONFLICT (poll_id) DO NOTHING RETURNING poll_id",
                    (
                        poll_id,
                        spec.question,
                        spec.placement,
                        spec.closes_at,
                        created_by,
                        offer.percent_off if offer else None,
                        offer.product_slug if offer else None,
                        offer.valid_s if offer else None,
                    ),
                )
            ).fetchone()
            if inserted is not None:
                cur = conn.cursor()
                await cur.executemany(
                    "INSERT INTO poll_options (poll_id, option_id, position, label, sku,"
                    " product_id) VALUES (%s, %s, %s, %s, %s, %s)",
                    [
                        (
                            poll_id,
                            f"o{n + 1}",
                            n,
                            o.label.strip(),
                            o.sku,
                            products.get(o.sku) if o.sku else None,
                        )
                        for n, o in enumerate(spec.options)
                    ],
                )
        poll = await self.poll(poll_id)
        assert poll is not None
        return poll

    async def poll(self, poll_id: str) -> Poll | None:
        found = await self._polls("WHERE poll_id = %s", (poll_id,))
        return found[0] if found else None

    async def open_polls(self, placement: str, limit: int = 20) -> list[Poll]:
        return await self._polls(
            "WHERE placement = %s AND status = 'open'"
            " AND (closes_at IS NULL OR closes_at > now())"
            " ORDER BY created_at DESC, poll_id LIMIT %s",
            (placement, limit),
        )

    async def recent(self, limit: int = 100) -> list[Poll]:
        return await self._polls("ORDER BY created_at DESC, poll_id LIMIT %s", (limit,))

    async def close(self, poll_id: str) -> Poll | None:
        async with StorageConnection(self.pool, "polls") as conn:
            await conn.execute(
                "UPDATE polls SET status = %s, closed_at = coalesce(closed_at, now())"
                " WHERE poll_id = %s",
                (CLOSED, poll_id),
            )
        return await self.poll(poll_id)

    # -- votes ---------------------------------------------------------------------------------

    async def store_votes(self, votes: Sequence[VoteRow]) -> int:
        """Insert drained votes; a repeat (same poll and customer) or a vote naming no option
        of its poll is skipped, so one malformed entry cannot block the stream."""
        if not votes:
            return 0
        async with StorageConnection(self.pool, "polls") as conn:
            cur = await conn.execute(
                "INSERT INTO poll_votes (poll_id, customer_id, option_id, voted_at)"
                " SELECT v.poll_id, v.customer_id, v.option_id, to_timestamp(v.at)"
                " FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[])"
                "   AS v(poll_id, customer_id, option_id, at)"
                " JOIN poll_options o USING (poll_id, option_id)"
                " ON CONFLICT (poll_id, customer_id) DO NOTHING",
                (
                    [v[0] for v in votes],
                    [v[1] for v in votes],
                    [v[2] for v in votes],
                    [v[3] for v in votes],
                ),
            )
            return cur.rowcount

    async def votes(self, poll_id: str) -> list[tuple[str, str, float]]:
        """Every stored vote of a poll: (customer_id, option_id, voted_at)."""
        async with StorageConnection(self.pool, "polls") as conn:
            rows = await (
                await conn.execute(
                    "SELECT customer_id, option_id, extract(epoch FROM voted_at)"
                    " FROM poll_votes WHERE poll_id = %s",
                    (poll_id,),
                )
            ).fetchall()
        return [(r[0], r[1], float(r[2])) for r in rows]

    async def vote_of(self, poll_id: str, customer_id: str) -> tuple[str, float] | None:
        async with StorageConnection(self.pool, "polls") as conn:
            row = await (
                await conn.execute(
                    "SELECT option_id, extract(epoch FROM voted_at) FROM poll_votes"
                    " WHERE poll_id = %s AND customer_id = %s",
                    (poll_id, customer_id),
                )
            ).fetchone()
        return None if row is None else (row[0], float(row[1]))

    async def tally(self, poll_id: str) -> dict[str, int]:
        async with StorageConnection(self.pool, "polls") as conn:
            rows = await (
                await conn.execute(
                    "SELECT option_id, count(*) FROM poll_votes WHERE poll_id = %s"
                    " GROUP BY option_id",
                    (poll_id,),
                )
            ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    # -- offers --------------------------------------------------------------------------------

    async def redeemed_by(self, poll_id: str, customer_id: str) -> str | None:
        async with StorageConnection(self.pool, "polls") as conn:
            row = await (
                await conn.execute(
                    "SELECT order_id FROM offer_redemptions WHERE poll_id = %s"
                    " AND customer_id = %s",
                    (poll_id, customer_id),
                )
            ).fetchone()
        return None if row is None else str(row[0])

    async def product_skus(self, product_id: str, skus: Sequence[str]) -> set[str]:
        async with StorageConnection(self.pool, "polls") as conn:
            rows = await (
                await conn.execute(
                    "SELECT sku FROM variants WHERE product_id = %s AND sku = ANY(%s)",
                    (product_id, list(skus)),
                )
            ).fetchall()
        return {r[0] for r in rows}

    async def customer_limits(self, skus: Sequence[str]) -> dict[str, int | None]:
        async with StorageConnection(self.pool, "polls") as conn:
            rows = await (
                await conn.execute(
                    "SELECT sku, per_customer_limit FROM inventory WHERE sku = ANY(%s)",
                    (list(skus),),
                )
            ).fetchall()
        return {r[0]: (int(r[1]) if r[1] is not None else None) for r in rows}

    # -- helpers -------------------------------------------------------------------------------

    async def _polls(self, where: str, params: tuple[Any, ...]) -> list[Poll]:
        async with StorageConnection(self.pool, "polls") as conn:
            rows = await (
                await conn.execute(f"SELECT {_POLL_COLUMNS} FROM polls {where}", params)
            ).fetchall()
            if not rows:
                return []
            opts = await (
                await conn.execute(
                    "SELECT poll_id, option_id, label, sku, product_id FROM poll_options"
                    " WHERE poll_id = ANY(%s) ORDER BY poll_id, position",
                    ([r[0] for r in rows],),
                )
            ).fetchall()
        by_poll: dict[str, list[PollOption]] = {}
        for o in opts:
            by_poll.setdefault(o[0], []).append(PollOption(o[1], o[2], o[3], o[4]))
        return [_poll(r, by_poll.get(r[0], [])) for r in rows]

    @staticmethod
    async def _products_of(conn: Any, skus: list[str]) -> dict[str, str]:
        if not skus:
            return {}
        rows = await (
            await conn.execute("SELECT sku, product_id FROM variants WHERE sku = ANY(%s)", (skus,))
        ).fetchall()
        return {r[0]: r[1] for r in rows}


# -- inside the order's transaction (shop_repo) ------------------------------------------------


async def claim_offer(
    conn: psycopg.AsyncConnection[Any], code: str, customer_id: str, order_id: str
) -> bool:
    """Take the voter's one use of their offer for ``order_id``; False if already taken.

    Run in the transaction that inserts the order: of two concurrent checkouts with the same
    code, the second waits on the first's row and then finds it, so exactly one order gets
    the discount, and a rolled-back order leaves no claim behind."""
    row = await (
        await conn.execute(
            "INSERT INTO offer_redemptions (poll_id, customer_id, code, order_id)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING order_id",
            (parse_poll_id(code), customer_id, code, order_id),
        )
    ).fetchone()
    return row is not None


async def release_offer(conn: psycopg.AsyncConnection[Any], order_id: str) -> None:
    """Give the offer back when its order failed payment or was cancelled before paying."""
    await conn.execute("DELETE FROM offer_redemptions WHERE order_id = %s", (order_id,))
