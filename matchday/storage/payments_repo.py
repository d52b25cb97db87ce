"""All SQL of payments: attempts, captures, the retry queue, webhooks, fraud signals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from matchday.payments.ports import Attempt
from matchday.storage.db import autocommit

_ATTEMPT = "order_id, attempt, gateway, intent_id, status, error, risk_level, fingerprint"
# Order statuses under which a payment may still be claimed for capture.
CAPTURABLE = ("pending_payment", "payment_pending", "requires_action")


class PaymentsRepository:
    def __init__(self, pool: AsyncConnectionPool, region: str = "local") -> None:
        self.pool = pool
        # Written on every attempt, so the payments report splits success by region too.
        self.region = region

    # -- attempts ------------------------------------------------------------------------------

    async def attempt(self, order_id: str, attempt: int, gateway: str) -> Attempt | None:
        async with autocommit(self.pool, "payments") as conn:
            row = await (
                await conn.execute(
                    f"SELECT {_ATTEMPT} FROM payment_attempts"
                    " WHERE order_id = %s AND attempt = %s AND gateway = %s",
                    (order_id, attempt, gateway),
                )
            ).fetchone()
        return None if row is None else Attempt(*row)

    async def attempts_of(self, order_id: str) -> list[Attempt]:
        async with autocommit(self.pool, "payments") as conn:
            rows = await (
                await conn.execute(
                    f"SELECT {_ATTEMPT} FROM payment_attempts WHERE order_id = %s"
                    " ORDER BY attempt, started_at",
                    (order_id,),
                )
            ).fetchall()
        return [Attempt(*r) for r in rows]

    async def by_intent(self, intent_id: str) -> Attempt | None:
        async with autocommit(self.pool, "payments") as conn:
            row = await (
                await conn.execute(
                    f"SELECT {_ATTEMPT} FROM payment_attempts WHERE intent_id = %s LIMIT 1",
                    (intent_id,),
                )
            ).fetchone()
        return None if row is None else Attempt(*row)

    async def record(
        self,
        order_id: str,
        attempt: int,
        gateway: str,
        status: str,
        *,
        intent_id: str | None = None,
        error: str | None = None,
        risk_level: str | None = None,
        fingerprint: str | None = None,
    ) -> None:
        """Upsert the attempt's latest state (an intent id, once known, is never lost) and
        append it to the attempt log; one statement."""
        async with autocommit(self.pool, "payments") as conn:
            await conn.execute(
                "WITH a AS (INSERT INTO payment_attempts (order_id, attempt, gateway, intent_id,"
                " status,"
                " error, risk_level, fingerprint, region)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (order_id, attempt, gateway) DO UPDATE SET"
                " intent_id = COALESCE(EXCLUDED.intent_id, payment_attempts.intent_id),"
                " status = EXCLUDED.status, error = EXCLUDED.error,"
                " risk_level = COALESCE(EXCLUDED.risk_level, payment_attempts.risk_level),"
                " fingerprint = COALESCE(EXCLUDED.fingerprint, payment_attempts.fingerprint),"
                " updated_at = now())"
                " INSERT INTO payment_attempt_log (order_id, attempt, gateway, intent_id, status,"
                " error) VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    order_id,
                    attempt,
                    gateway,
                    intent_id,
                    status,
                    error,
                    risk_level,
                    fingerprint,
                    self.region,
                    order_id,
                    attempt,
                    gateway,
                    intent_id,
                    status,
                    error,
                ),
            )

    async def open_attempts(self, older_than_s: float, limit: int = 100) -> list[Attempt]:
        """Attempts whose outcome we never learned (or that waited on the customer's bank),
        of orders that have since settled."""
        async with autocommit(self.pool, "payments") as conn:
            rows = await (
                await conn.execute(
                    f"SELECT {', '.join('a.' + c for c in _ATTEMPT.split(', '))}"
                    " FROM payment_attempts a JOIN orders o USING (order_id)"
                    " WHERE a.status IN ('started', 'requires_capture', 'requires_action',"
                    " 'unknown') AND a.updated_at < now() - %s * interval '1 s'"
                    " AND o.status NOT IN ('pending_payment', 'payment_pending',"
                    " 'requires_action')"
                    " ORDER BY a.updated_at LIMIT %s",
                    (older_than_s, limit),
                )
            ).fetchall()
        return [Attempt(*r) for r in rows]

    # -- the one capture per order -------------------------------------------------------------

    async def claim_capture(
        self, order_id: str, gateway: str, intent_id: str
    ) -> tuple[str, str] | None:
        """(gateway, intent) that may be captured for ``order_id``: this one if no other was
        claimed first. Two processes racing for different intents: exactly one wins.

        None when the order settled without a claim (failed at its payment deadline, its
        holds lost, cancelled), or its deadline has passed with no claim made: nothing may be
        captured for it any more, even before the worker has failed it. The claim locks the
        order's row, as ShopRepository.update_order(unless_captured=True) does, so a deadline
        and a claim never both happen."""
        async with autocommit(self.pool, "payments") as conn:
            # One round trip: the lock, the claim if the order may still be captured, and
            # the claim as it stands, read after the lock (its own statement: it sees a claim
            # committed while we waited), in one transaction sent at once.
            async with conn.pipeline():
                await conn.execute("BEGIN")
                await conn.execute(
                    "SELECT 1 FROM orders WHERE order_id = %s FOR NO KEY UPDATE", (order_id,)
                )
                await conn.execute(
                    "INSERT INTO payment_captures (order_id, gateway, intent_id)"
                    " SELECT order_id, %s, %s FROM orders"
                    " WHERE order_id = %s AND status = ANY(%s)"
                    " AND (pay_by IS NULL OR pay_by > now()) ON CONFLICT DO NOTHING",
                    (gateway, intent_id, order_id, list(CAPTURABLE)),
                )
                claimed = await conn.execute(_CLAIMED, (order_id,))
                await conn.execute("COMMIT")
            return _claim(await claimed.fetchone())

    async def captured(self, order_id: str) -> tuple[str, str] | None:
        async with autocommit(self.pool, "payments") as conn:
            return _claim(await (await conn.execute(_CLAIMED, (order_id,))).fetchone())

    # -- the retry queue -----------------------------------------------------------------------

    async def start_attempt(self, order_id: str, pay_within_s: float, queue_after_s: float) -> int:
        """Count the order's first charge attempt, which starts its payment deadline, and queue
        the order for the payments worker (due in ``queue_after_s``) unless it is queued:
        one statement. The attempt number."""
        async with autocommit(self.pool, "payments") as conn:
            row = await (
                await conn.execute(
                    "WITH b AS (UPDATE orders SET attempts = attempts + 1, updated_at = now(),"
                    " pay_by = COALESCE(pay_by, now() + %s * interval '1 s')"
                    " WHERE order_id = %s RETURNING order_id, attempts),"
                    " q AS (INSERT INTO payment_queue (order_id, next_at)"
                    " SELECT order_id, now() + %s * interval '1 s' FROM b"
                    " ON CONFLICT (order_id) DO NOTHING)"
                    " SELECT attempts FROM b",
                    (pay_within_s, order_id, queue_after_s),
                )
            ).fetchone()
        assert row is not None
        return int(row[0])

    async def schedule(
        self,
        order_id: str,
        after_s: float,
        error: str | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        on_conflict = (
            "DO NOTHING"
            if only_if_absent
            else "DO UPDATE SET next_at = EXCLUDED.next_at,"
            " last_error = COALESCE(EXCLUDED.last_error, payment_queue.last_error)"
        )
        async with autocommit(self.pool, "payments") as conn:
            await conn.execute(
                "INSERT INTO payment_queue (order_id, next_at, last_error)"
                " VALUES (%s, now() + %s * interval '1 s', %s)"
                f" ON CONFLICT (order_id) {on_conflict}",
                (order_id, after_s, error),
            )

    async def done(self, order_id: str) -> None:
        async with autocommit(self.pool, "payments") as conn:
            await conn.execute("DELETE FROM payment_queue WHERE order_id = %s", (order_id,))

    async def claim_due(
        self, limit: int, lease_s: float, *, at: float | None = None
    ) -> list[tuple[str, int]]:
        """(order, tries) of due rows; each is leased (next_at pushed out) by the statement
        that finds it, so concurrent workers never take the same order."""
        async with autocommit(self.pool, "payments") as conn:
            rows = await (
                await conn.execute(
                    "WITH due AS (SELECT order_id, next_at FROM payment_queue"
                    " WHERE next_at <= COALESCE(to_timestamp(%s::float8), now())"
                    " ORDER BY next_at LIMIT %s FOR UPDATE SKIP LOCKED),"
                    " leased AS (UPDATE payment_queue q SET tries = q.tries + 1,"
                    " next_at = now() + %s * interval '1 s' FROM due"
                    " WHERE q.order_id = due.order_id RETURNING q.order_id, q.tries, due.next_at)"
                    " SELECT order_id, tries FROM leased ORDER BY next_at",
                    (at, limit, lease_s),
                )
            ).fetchall()
        return [(str(r[0]), int(r[1])) for r in rows]

    async def enqueue_stale(self, older_than_s: float, limit: int = 500) -> int:
        """Orders in flight missing from the queue (a crash before their row was written)."""
        async with autocommit(self.pool, "payments") as conn:
            cur = await conn.execute(
                "INSERT INTO payment_queue (order_id, next_at)"
                " SELECT order_id, now() FROM orders"
                " WHERE status IN ('pending_payment', 'payment_pending', 'requires_action')"
                " AND updated_at < now() - %s * interval '1 s'"
                " ORDER BY updated_at LIMIT %s ON CONFLICT DO NOTHING",
                (older_than_s, limit),
            )
            return cur.rowcount

    async def queue_depth(self) -> int:
        async with autocommit(self.pool, "payments") as conn:
            row = await (await conn.execute("SELECT count(*) FROM payment_queue")).fetchone()
        return int(row[0]) if row else 0

    async def queued(self, order_id: str) -> tuple[int, float] | None:
        async with autocommit(self.pool, "payments") as conn:
            row = await (
                await conn.execute(
                    "SELECT tries, extract(epoch FROM next_at) FROM payment_queue"
                    " WHERE order_id = %s",
                    (order_id,),
                )
            ).fetchone()
        return None if row is None else (int(row[0]), float(row[1]))

    # -- webhooks, fraud, disputes -------------------------------------------------------------

    async def first_delivery(
        self, event_id: str, account: str, type_: str, object_id: str | None
    ) -> bool:
        async with autocommit(self.pool, "payments") as conn:
            cur = await conn.execute(
                "INSERT INTO webhook_events (event_id, account, type, object_id)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (event_id, account, type_, object_id),
            )
            return cur.rowcount == 1

    async def forget_delivery(self, event_id: str) -> None:
        """Handling failed: let the gateway's redelivery be handled again."""
        async with autocommit(self.pool, "payments") as conn:
            await conn.execute("DELETE FROM webhook_events WHERE event_id = %s", (event_id,))

    async def add_signal(
        self, order_id: str, customer_id: str, fingerprint: str | None, client_ip: str | None
    ) -> None:
        async with autocommit(self.pool, "payments") as conn:
            await conn.execute(
                "INSERT INTO checkout_signals (order_id, customer_id, fingerprint, client_ip)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (order_id, customer_id, fingerprint, client_ip),
            )

    async def velocity(
        self, window_s: float, customer_id: str, fingerprint: str | None, client_ip: str | None
    ) -> dict[str, int]:
        """Checkouts in the last ``window_s`` per customer, card fingerprint and address."""
        async with autocommit(self.pool, "payments") as conn:
            row = await (
                await conn.execute(
                    "SELECT count(*) FILTER (WHERE customer_id = %s),"
                    " count(*) FILTER (WHERE fingerprint = %s),"
                    " count(*) FILTER (WHERE client_ip = %s)"
                    " FROM checkout_signals WHERE at > now() - %s * interval '1 s'"
                    " AND (customer_id = %s OR fingerprint = %s OR client_ip = %s)",
                    (
                        customer_id,
                        fingerprint,
                        client_ip,
                        window_s,
                        customer_id,
                        fingerprint,
                        client_ip,
                    ),
                )
            ).fetchone()
        assert row is not None
        return {"customer": int(row[0]), "fingerprint": int(row[1]), "ip": int(row[2])}

    async def suspicious(
        self, kind: str, order_id: str | None, customer_id: str | None, detail: dict[str, Any]
    ) -> None:
        async with autocommit(self.pool, "payments") as conn:
            await conn.execute(
                "INSERT INTO suspicious_activity (kind, order_id, customer_id, detail)"
                " VALUES (%s, %s, %s, %s)",
                (kind, order_id, customer_id, Jsonb(detail)),
            )

    async def suspicious_of(self, order_id: str) -> list[tuple[str, dict[str, Any]]]:
        async with autocommit(self.pool, "payments") as conn:
            rows = await (
                await conn.execute(
                    "SELECT kind, detail FROM suspicious_activity WHERE order_id = %s ORDER BY seq",
                    (order_id,),
                )
            ).fetchall()
        return [(str(r[0]), dict(r[1])) for r in rows]

    async def dispute(
        self,
        dispute_id: str,
        account: str,
        *,
        charge_id: str | None,
        intent_id: str | None,
        order_id: str | None,
        amount_cents: int | None,
        reason: str | None,
        status: str | None,
    ) -> None:
        async with autocommit(self.pool, "payments") as conn:
            await conn.execute(
                "INSERT INTO disputes (dispute_id, account, charge_id, intent_id, order_id,"
                " amount_cents, reason, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (dispute_id) DO UPDATE SET status = EXCLUDED.status",
                (dispute_id, account, charge_id, intent_id, order_id, amount_cents, reason, status),
            )

    # -- refunds -------------------------------------------------------------------------------

    async def refund_row(self, key: str) -> tuple[str, str, str | None, int, str] | None:
        """(gateway, intent, refund id, amount, status) of the refund under ``key``."""
        async with autocommit(self.pool, "payments") as conn:
            row = await (
                await conn.execute(
                    "SELECT gateway, intent_id, refund_id, amount_cents, status"
                    " FROM payment_refunds WHERE idempotency_key = %s",
                    (key,),
                )
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2], int(row[3]), row[4])

    async def record_refund(
        self,
        key: str,
        gateway: str,
        intent_id: str,
        amount_cents: int,
        status: str,
        refund_id: str | None = None,
    ) -> None:
        async with autocommit(self.pool, "payments") as conn:
            await conn.execute(
                "INSERT INTO payment_refunds (idempotency_key, gateway, intent_id, refund_id,"
                " amount_cents, status) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (idempotency_key) DO UPDATE SET status = EXCLUDED.status,"
                " refund_id = COALESCE(EXCLUDED.refund_id, payment_refunds.refund_id)",
                (key, gateway, intent_id, refund_id, amount_cents, status),
            )

    async def refunded_cents(self, intent_id: str) -> int:
        async with autocommit(self.pool, "payments") as conn:
            row = await (
                await conn.execute(
                    "SELECT COALESCE(sum(amount_cents), 0) FROM payment_refunds"
                    " WHERE intent_id = %s AND status IN ('succeeded', 'pending')",
                    (intent_id,),
                )
            ).fetchone()
        return int(row[0]) if row else 0


_CLAIMED = "SELECT gateway, intent_id FROM payment_captures WHERE order_id = %s"


def _claim(row: tuple[Any, ...] | None) -> tuple[str, str] | None:
    return None if row is None else (str(row[0]), str(row[1]))


if TYPE_CHECKING:  # mypy proves the repository implements the features' ports (issue 14)
    from matchday.payments.ports import PaymentQueue, RouterRecords, SignalStore, WebhookRecords
    from matchday.shop.ports import PaymentLedger

    def _implements(
        repo: PaymentsRepository,
    ) -> tuple[RouterRecords, SignalStore, PaymentQueue, WebhookRecords, PaymentLedger]:
        return repo, repo, repo, repo, repo
