"""The Stripe gateway's SDK calls: each bounded as a whole, in the gateway's own threads.

No network: a fake client whose calls block on a threading.Event stands in for a Stripe
frozen with SIGSTOP (tests/integration/test_payments_hung.py freezes a real localstripe)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from matchday.payments.gateway import GatewayTimeout
from matchday.payments.stripe_gateway import StripeGateway


class Card:
    def __init__(self, fp: str) -> None:
        self.fp = fp

    def to_dict(self) -> dict[str, Any]:
        return {"card": {"fingerprint": self.fp}}


def gateway(name: str, retrieve: Any, *, threads: int, timeout_s: float) -> StripeGateway:
    client = SimpleNamespace(v1=SimpleNamespace(payment_methods=SimpleNamespace(retrieve=retrieve)))
    attempts: Any = None  # these calls record nothing
    return StripeGateway(name, client, attempts, timeout_s=timeout_s, threads=threads)


async def test_calls_queued_behind_a_hung_server_time_out_and_are_never_sent() -> None:
    frozen = threading.Event()
    sent: list[str] = []

    def retrieve(token: str) -> Card:
        sent.append(token)
        frozen.wait(10)
        return Card("fp_late")

    primary = gateway("primary", retrieve, threads=2, timeout_s=0.2)
    backup = gateway("backup", lambda token: Card("fp_backup"), threads=2, timeout_s=0.2)
    try:
        calls = [primary.fingerprint(f"pm_card_{n}") for n in range(3)]
        # A guard against hanging the suite, not a target: each call's own bound ends it.
        answers = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
        assert all(isinstance(a, GatewayTimeout) for a in answers), answers
        # The other account has threads of its own: it answers while these are still stuck.
        assert await asyncio.wait_for(backup.fingerprint("pm_card_visa"), 5) == "fp_backup"
        frozen.set()
        await asyncio.sleep(0.1)
        assert sorted(sent) == ["pm_card_0", "pm_card_1"]  # the queued third was never sent
    finally:
        frozen.set()
        primary.close()
        backup.close()


async def test_an_sdk_timeout_is_a_gateway_timeout_not_a_refusal() -> None:
    import httpx
    import stripe

    def retrieve(token: str) -> Card:
        try:
            raise httpx.ReadTimeout("timed out")
        except httpx.ReadTimeout as exc:
            raise stripe.APIConnectionError("Request timed out") from exc

    g = gateway("primary", retrieve, threads=1, timeout_s=1.0)
    try:
        with pytest.raises(GatewayTimeout):
            await g.fingerprint("pm_card_visa")
    finally:
        g.close()
