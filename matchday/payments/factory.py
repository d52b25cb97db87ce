"""The gateway a process pays through, built from settings (ADR 0008)."""

from __future__ import annotations

from collections.abc import Sequence

from matchday.payments.gateway import PaymentGateway, TestGateway
from matchday.payments.ports import RouterRecords
from matchday.payments.router import CircuitBreaker, PaymentRouter
from matchday.payments.stripe_gateway import StripeGateway, make_client
from matchday.settings import Settings

PRIMARY = "stripe-primary"
BACKUP = "stripe-backup"
# The gateway bounds each SDK call by stripe_timeout_s (its wait for a thread included), so a
# hung account fails over after one timeout (issue 13). A charge makes up to three calls in a
# row (retrieve or create, confirm, capture): the router caps the whole answer at that many
# timeouts, which also bounds a lookup that lists page after page of a slow account.
CHARGE_CALLS = 3


def stripe_gateways(settings: Settings, repo: RouterRecords) -> list[StripeGateway]:
    accounts = [(PRIMARY, settings.stripe_api_key, settings.stripe_api_base)]
    if settings.stripe_backup_api_key.get_secret_value():
        accounts.append((BACKUP, settings.stripe_backup_api_key, settings.stripe_backup_api_base))
    return [
        StripeGateway(
            name,
            make_client(key.get_secret_value(), base, settings.stripe_timeout_s),
            repo,
            payment_method_types=settings.stripe_payment_method_types,
            capture_method=settings.stripe_capture_method,
            timeout_s=settings.stripe_timeout_s,
        )
        for name, key, base in accounts
    ]


def build_gateway(settings: Settings, repo: RouterRecords) -> PaymentGateway:
    """The test gateway, or a router over the configured Stripe accounts."""
    if settings.gateway_kind == "test":
        return TestGateway()
    return router_over(stripe_gateways(settings, repo), settings, repo)


def router_over(
    gateways: Sequence[PaymentGateway], settings: Settings, repo: RouterRecords
) -> PaymentRouter:
    async def attempted_on(order_id: str, attempt: int) -> list[str]:
        rows = [a for a in await repo.attempts_of(order_id) if a.attempt == attempt]
        rows.sort(key=lambda a: a.intent_id is None)  # those that know their intent first
        return [a.gateway for a in rows]

    async def made_by(intent_id: str) -> str | None:
        row = await repo.by_intent(intent_id)
        return None if row is None else row.gateway

    return PaymentRouter(
        gateways,
        region=settings.payment_region,
        breakers=[
            CircuitBreaker(failures=settings.breaker_failures, reset_s=settings.breaker_reset_s)
            for _ in gateways
        ],
        attempted_on=attempted_on,
        made_by=made_by,
        call_timeout_s=CHARGE_CALLS * settings.stripe_timeout_s,
    )
