"""What operators watch about payments (read only): orders past their payment deadline,
orders that ended unpaid and payments voided, for the payments worker's metrics sampler."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from matchday.storage.db import StorageConnection

# What operators are alerted on (the worker's sampler, matchday.metrics): orders that ended
# unpaid, by failure code, and money voided for orders that could not take it, by kind.
UNPAID_CODES = ("payment_timeout", "hold_lost", "sold_out_refunded", "partly_refunded")
LATE_KINDS = (
    "late_authorisation_cancelled",
    "late_charge_refunded",
    "duplicate_charge_refunded",
    "duplicate_authorisation",
    "sold_out_refunded",
)


def _literals(words: tuple[str, ...]) -> str:
    assert all(w.replace("_", "").isalnum() for w in words)  # our own constants, never input
    return ", ".join(f"'{w}'" for w in words)


class PaymentWatch:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def overdue(self, grace_s: float, pay_within_s: float) -> int:
        """Orders still in flight ``grace_s`` past their payment deadline: the worker fails
        them at the deadline, so more than none means it is not running (an alert)."""
        async with StorageConnection(self.pool, "payments") as conn:
            row = await (
                await conn.execute(
                    "SELECT count(*) FROM orders"
                    " WHERE status IN ('pending_payment', 'payment_pending', 'requires_action')"
                    " AND attempts > 0 AND COALESCE(pay_by, created_at + %s * interval '1 s')"
                    "   < now() - %s * interval '1 s'",
                    (pay_within_s, grace_s),
                )
            ).fetchone()
        return int(row[0]) if row else 0

    async def recent_endings(self, window_s: float) -> dict[str, dict[str, int]]:
        """The last ``window_s``: orders ended unpaid by code, late payments voided by kind
        (every code and kind present, zero or not, so a gauge goes back to 0)."""
        async with StorageConnection(self.pool, "payments") as conn:
            codes = await (
                await conn.execute(
                    # The codes as literals: the partial index orders_ended_unpaid
                    # (migration 011) is only used when the planner can see them.
                    f"SELECT failure_code, count(*) FROM orders WHERE failure_code IN"
                    f" ({_literals(UNPAID_CODES)}) AND updated_at > now() - %s * interval '1 s'"
                    " GROUP BY failure_code",
                    (window_s,),
                )
            ).fetchall()
            kinds = await (
                await conn.execute(
                    "SELECT kind, count(*) FROM suspicious_activity WHERE kind = ANY(%s)"
                    " AND at > now() - %s * interval '1 s' GROUP BY kind",
                    (list(LATE_KINDS), window_s),
                )
            ).fetchall()
        return {
            "unpaid": {**dict.fromkeys(UNPAID_CODES, 0), **{r[0]: int(r[1]) for r in codes}},
            "late": {**dict.fromkeys(LATE_KINDS, 0), **{r[0]: int(r[1]) for r in kinds}},
        }
