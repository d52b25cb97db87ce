"""A :class:`PaymentGateway` on Stripe PaymentIntents, through the official SDK.

One gateway per Stripe account (primary, backup: :mod:`matchday.payments.router`). The SDK is
synchronous: every call runs in a thread of the gateway's own pool, bounded as a whole (the
wait for a thread included) by ``timeout_s``, and the SDK's own retries are off, so retrying
is decided here and in the router, never twice.

Never charge twice, even on a server that ignores ``Idempotency-Key`` (localstripe):

- Every attempt ``<order>:<attempt>`` is written to ``payment_attempts`` *before* the create
  call and completed with the intent id after. The intent also carries the key in its
  metadata and the key as its Idempotency-Key.
- A retry of an attempt whose intent id we recorded retrieves that intent; one we never
  heard back from (a ``started`` row) is looked up by its metadata key first and created
  only when the gateway has none.
- Intents are authorised, then captured (``capture_method=manual``) only by the process that
  claims the order's single row in ``payment_captures``. A duplicate authorisation, from a
  timed-out call the gateway processed after all or a failover, is cancelled, never captured.

Outcomes: ``succeeded``; ``requires_action`` (3-D Secure); a ``CardError`` or any other 4xx
is a settled decline (nothing was charged: the router never fails over on it); connection
errors, timeouts, 429 and 5xx raise :class:`Unavailable` (outcome unknown).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import httpx
import stripe

from matchday.domain.errors import Unavailable
from matchday.payments.gateway import (
    ChargeRequest,
    ChargeResult,
    GatewayTimeout,
    OrderClosed,
    RefundResult,
    check_token,
)
from matchday.payments.ports import Attempt, GatewayRecords

log = logging.getLogger(__name__)

KEY_FIELD = "matchday_key"
ORDER_FIELD = "matchday_order"
# Looking an ambiguous intent up by listing reads at most this many pages of 100 (localstripe
# has no search; real Stripe's search answers first). Newest first, so recent keys are found.
MAX_LIST_PAGES = 20
# What the best of several intents for one key is, when a lookup finds more than one.
_RANK = {"succeeded": 0, "requires_capture": 1, "processing": 2, "requires_action": 3}
# Each gateway's own threads for the synchronous SDK. asyncio.to_thread shares the loop's
# default pool, min(32, cpus + 4) = 6 threads on the 2-core test machine: calls to a Stripe
# frozen with SIGSTOP held all six, and every other call (the backup's and the card-fingerprint
# lookup's too) queued behind them for 14-20 s, past the 10 s timeout (issue 13). 64 threads
# carry 64 calls in flight per account and process; at Stripe's 0.3-3 s a call that is 20-200
# calls/s, above one Payments replica's checkout rate. A call beyond them waits for a thread
# within its own timeout, and then counts as an outage: it never blocks the other account.
THREADS_PER_GATEWAY = 64
_TRANSIENT = (
    stripe.APIConnectionError,
    stripe.APIError,
    stripe.RateLimitError,
    stripe.AuthenticationError,  # a misconfigured account: nothing was charged, fail over
    stripe.PermissionError,
)


def make_client(api_key: str, api_base: str, timeout_s: float) -> stripe.StripeClient:
    """A client that never retries by itself and gives up after ``timeout_s``."""
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        max_network_retries=0,
        http_client=stripe.HTTPXClient(timeout=timeout_s, allow_sync_methods=True),
    )


class StripeGateway:
    def __init__(
        self,
        name: str,
        client: stripe.StripeClient,
        attempts: GatewayRecords,
        *,
        payment_method_types: Sequence[str] = ("card",),
        capture_method: Literal["manual", "automatic"] = "manual",
        timeout_s: float = 10.0,
        threads: int = THREADS_PER_GATEWAY,
    ) -> None:
        self.name = name
        self.client = client
        self.attempts = attempts
        self.payment_method_types = list(payment_method_types)
        self.capture_method = capture_method
        self.timeout_s = timeout_s
        # Threads start on first use, so building a gateway starts nothing (import-safe).
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix=f"stripe-{name}")
        self._search_works = True

    # -- the PaymentGateway protocol -----------------------------------------------------------

    async def charge(self, req: ChargeRequest) -> ChargeResult:
        check_token(req.payment_token)
        known = await self.attempts.attempt(req.order_id, req.attempt, self.name)
        intent: Any = None
        if known is not None:
            if known.intent_id:
                intent = await self._call(self.client.v1.payment_intents.retrieve, known.intent_id)
            else:  # we never heard back: look before sending again
                intent = self._best(await self.find(req.idempotency_key))
        if intent is None:
            await self.attempts.record(req.order_id, req.attempt, self.name, "started")
            try:
                intent = await self._create(req)
            except (stripe.CardError, stripe.InvalidRequestError) as exc:
                return await self._refused(req, exc)
        await self._note(req.order_id, req.attempt, intent)
        return await self._settle(req.order_id, req.attempt, intent)

    async def refund(
        self, payment_ref: str, amount_cents: int, idempotency_key: str
    ) -> RefundResult:
        row = await self.attempts.refund_row(idempotency_key)
        if row is not None and row[2]:
            return RefundResult(self.name, row[2], row[3])
        if row is not None:  # started, never heard back: was it made?
            for refund in await self._refunds_of(payment_ref):
                if _meta(refund).get(KEY_FIELD) == idempotency_key:
                    await self.attempts.record_refund(
                        idempotency_key,
                        self.name,
                        payment_ref,
                        amount_cents,
                        "succeeded",
                        refund.id,
                    )
                    return RefundResult(self.name, refund.id, int(refund.amount))
        await self.attempts.record_refund(
            idempotency_key, self.name, payment_ref, amount_cents, "started"
        )
        refund = await self._call(
            self.client.v1.refunds.create,
            params={
                "payment_intent": payment_ref,
                "amount": amount_cents,
                "metadata": {KEY_FIELD: idempotency_key},
            },
            options={"idempotency_key": f"refund:{idempotency_key}"},
        )
        await self.attempts.record_refund(
            idempotency_key, self.name, payment_ref, amount_cents, str(refund.status), refund.id
        )
        return RefundResult(self.name, refund.id, int(refund.amount))

    async def fingerprint(self, payment_token: str) -> str | None:
        """The card's fingerprint (the same card under any token), for velocity rules."""
        check_token(payment_token)
        try:
            pm = await self._call(self.client.v1.payment_methods.retrieve, payment_token)
        except stripe.InvalidRequestError:
            return None
        card = pm.to_dict().get("card") or {}
        fp = card.get("fingerprint")
        return str(fp) if fp else None

    # -- lookups and reconciliation ------------------------------------------------------------

    async def find(self, key: str) -> list[Any]:
        """Every intent created under our key ``<order>:<attempt>`` on this account."""
        if self._search_works:
            try:
                found = await self._call(
                    self.client.v1.payment_intents.search,
                    params={"query": f"metadata['{KEY_FIELD}']:'{key}'", "limit": 10},
                )
                return list(found.data)
            except stripe.InvalidRequestError:
                self._search_works = False  # localstripe: list instead
        out: list[Any] = []
        after: str | None = None
        for _ in range(MAX_LIST_PAGES):
            params: dict[str, Any] = {"limit": 100}
            if after:
                params["starting_after"] = after
            page = await self._call(self.client.v1.payment_intents.list, params=params)
            out += [pi for pi in page.data if _meta(pi).get(KEY_FIELD) == key]
            if not page.has_more or not page.data:
                break
            after = page.data[-1].id
        return out

    async def retrieve(self, intent_id: str) -> Any:
        return await self._call(self.client.v1.payment_intents.retrieve, intent_id)

    async def release_stray(self, attempt: Attempt) -> int:
        """Cancel (or refund) every intent of an attempt that is not the order's capture.

        Run by the worker for attempts left open once their order settled; returns how many
        intents it voided. Safe to repeat."""
        keep = await self.attempts.captured(attempt.order_id)
        key = f"{attempt.order_id}:{attempt.attempt}"
        intents = await self.find(key)
        if attempt.intent_id and all(pi.id != attempt.intent_id for pi in intents):
            intents.append(await self.retrieve(attempt.intent_id))
        voided = 0
        for pi in intents:
            if keep is not None and keep == (self.name, pi.id):
                await self._note(attempt.order_id, attempt.attempt, pi)
                continue
            voided += await self._void(attempt.order_id, attempt.attempt, pi, keep)
        if not intents:
            await self.attempts.record(attempt.order_id, attempt.attempt, self.name, "not_found")
        return voided

    async def _void(
        self, order_id: str, attempt: int, pi: Any, keep: tuple[str, str] | None
    ) -> int:
        """Cancel (or refund) ``pi``, an intent that is not its order's capture; 1 if it
        held or took money. Money held or taken this way is logged as suspicious: an
        authorisation that came late (a timed-out call, a failover, a payment deadline), a
        capture beside the order's own, a charge for an order that ended without one."""
        kind = None
        if pi.status in (
            "requires_capture",
            "requires_confirmation",
            "requires_action",
            "requires_payment_method",
        ):
            await self._call(self.client.v1.payment_intents.cancel, pi.id)
            if pi.status == "requires_capture":  # money was held on the card
                kind = "late_authorisation_cancelled"
        elif pi.status == "succeeded":  # captured: give it back
            await self.refund(pi.id, int(pi.amount), f"stray:{pi.id}")
            kind = "duplicate_charge_refunded" if keep else "late_charge_refunded"
        await self.attempts.record(order_id, attempt, self.name, "voided", intent_id=pi.id)
        if kind is None:
            return int(pi.status != "canceled")
        await self.attempts.suspicious(
            kind,
            order_id,
            None,
            {
                "gateway": self.name,
                "intent": pi.id,
                "amount": int(pi.amount),
                "kept": keep[1] if keep else None,
            },
        )
        return 1

    # -- steps ---------------------------------------------------------------------------------

    async def _create(self, req: ChargeRequest) -> Any:
        return await self._call(
            self.client.v1.payment_intents.create,
            params={
                "amount": req.amount_cents,
                "currency": req.currency.lower(),
                "payment_method": req.payment_token,
                "payment_method_types": self.payment_method_types,
                "capture_method": self.capture_method,
                "confirm": True,
                "metadata": {KEY_FIELD: req.idempotency_key, ORDER_FIELD: req.order_id},
                "expand": ["latest_charge"],
            },
            options={"idempotency_key": req.idempotency_key},
        )

    async def _settle(self, order_id: str, attempt: int, intent: Any) -> ChargeResult:
        status = intent.status
        if status == "requires_confirmation":
            intent = await self._call(self.client.v1.payment_intents.confirm, intent.id)
            await self._note(order_id, attempt, intent)
            status = intent.status
        if status in ("requires_capture", "succeeded"):
            claim = await self.attempts.claim_capture(order_id, self.name, intent.id)
            if claim is None:  # the order ended without a payment (its deadline passed)
                await self._void(order_id, attempt, intent, None)
                raise OrderClosed.voided(order_id)
            gateway, winner = claim
            if (gateway, winner) != (self.name, intent.id):
                # Another intent holds this order's capture: this one is a duplicate.
                await self.attempts.suspicious(
                    "duplicate_authorisation",
                    order_id,
                    None,
                    {"gateway": self.name, "intent": intent.id, "kept": winner},
                )
                raise Unavailable(f"order {order_id} is being paid by {gateway} {winner}")
            if status == "requires_capture":
                intent = await self._capture(intent.id)
                await self._note(order_id, attempt, intent)
            return ChargeResult("succeeded", self.name, intent.id, risk_level=_risk(intent))
        if status == "requires_action":
            return ChargeResult(
                "requires_action",
                self.name,
                intent.id,
                "authentication_required",
                "the bank asks the customer to confirm this payment (3-D Secure)",
            )
        if status in ("requires_payment_method", "canceled"):
            err = intent.to_dict().get("last_payment_error") or {}
            code = str(err.get("decline_code") or err.get("code") or "card_declined")
            return ChargeResult(
                "declined",
                self.name,
                intent.id,
                code,
                str(err.get("message") or "the card was declined"),
            )
        raise Unavailable(f"payment {intent.id} is {status}: not settled yet")

    async def _capture(self, intent_id: str) -> Any:
        try:
            return await self._call(self.client.v1.payment_intents.capture, intent_id)
        except stripe.InvalidRequestError:  # captured by an earlier run whose answer was lost
            intent = await self.retrieve(intent_id)
            if intent.status != "succeeded":
                raise
            return intent

    async def _refused(
        self, req: ChargeRequest, exc: stripe.CardError | stripe.InvalidRequestError
    ) -> ChargeResult:
        err = exc.error.to_dict() if exc.error else {}
        pi = err.get("payment_intent")
        intent_id = (pi.get("id") if isinstance(pi, dict) else pi) or None
        code = str(err.get("decline_code") or exc.code or "card_declined")
        if isinstance(exc, stripe.InvalidRequestError):
            code = "invalid_payment_method" if exc.http_status == 404 else (exc.code or code)
        await self.attempts.record(
            req.order_id, req.attempt, self.name, "declined", intent_id=intent_id, error=code
        )
        message = exc.user_message or "the payment was refused"
        return ChargeResult("declined", self.name, intent_id or "", code, str(message))

    async def _note(self, order_id: str, attempt: int, intent: Any) -> None:
        await self.attempts.record(
            order_id,
            attempt,
            self.name,
            str(intent.status),
            intent_id=intent.id,
            risk_level=_risk(intent),
            fingerprint=_fingerprint(intent),
        )

    async def _refunds_of(self, intent_id: str) -> list[Any]:
        page = await self._call(
            self.client.v1.refunds.list, params={"payment_intent": intent_id, "limit": 100}
        )
        return list(page.data)

    @staticmethod
    def _best(intents: list[Any]) -> Any:
        if not intents:
            return None
        return min(intents, key=lambda pi: _RANK.get(pi.status, 9))

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn`` in this gateway's threads, answered within ``timeout_s`` all told.

        A call still queued for a thread when the time runs out is cancelled and never sent;
        one already sent may still be processed by Stripe (a late authorisation): the attempt
        record and the capture claim deal with that (ADR 0008)."""
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._threads, functools.partial(fn, *args, **kwargs))
        try:
            return await asyncio.wait_for(job, self.timeout_s)
        except TimeoutError:
            raise GatewayTimeout.after(self.name, self.timeout_s) from None
        except _TRANSIENT as exc:
            if isinstance(exc.__cause__, httpx.TimeoutException):
                raise GatewayTimeout.after(self.name, self.timeout_s) from None
            raise Unavailable(f"{self.name}: {type(exc).__name__}") from None
        except stripe.StripeError as exc:
            if (exc.http_status or 0) >= 500:
                raise Unavailable(f"{self.name}: HTTP {exc.http_status}") from None
            raise

    def close(self) -> None:
        """Let the threads go (a call still blocked finishes by its HTTP timeout)."""
        self._threads.shutdown(wait=False, cancel_futures=True)


def _meta(obj: Any) -> dict[str, Any]:
    meta = obj.to_dict().get("metadata")
    return meta if isinstance(meta, dict) else {}


def _charge_of(intent: Any) -> dict[str, Any]:
    charge = intent.to_dict().get("latest_charge")
    return charge if isinstance(charge, dict) else {}


def _risk(intent: Any) -> str | None:
    outcome = _charge_of(intent).get("outcome") or {}
    level = outcome.get("risk_level")
    return str(level) if level else None


def _fingerprint(intent: Any) -> str | None:
    details = _charge_of(intent).get("payment_method_details") or {}
    fp = (details.get("card") or {}).get("fingerprint")
    return str(fp) if fp else None
