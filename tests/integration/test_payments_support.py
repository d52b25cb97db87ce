"""localstripe servers for the payments tests, and the shop stack paying through them.

localstripe's own CLI (``localstripe --port N``) binds every interface (``::``) and pickles
its whole store to the shared file ``/tmp/localstripe.pickle`` on every write (two servers
would clobber it, and each write costs O(store)). The tests run the very same aiohttp app
on 127.0.0.1 with the pickle turned off: two independent "Stripe accounts" per run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import stripe

from matchday.payments.factory import router_over, stripe_gateways
from matchday.payments.router import PaymentRouter
from matchday.payments.stripe_gateway import StripeGateway
from matchday.settings import Settings
from matchday.storage.payments_repo import PaymentsRepository
from tests.integration.shop_stack import Stack, open_stack

LAUNCH = """
import sys
from aiohttp import web
from localstripe import resources, server
resources.Store.dump_to_disk = lambda self: None
web.run_app(server.app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalStripe:
    def __init__(self, key: str) -> None:
        self.key = key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalStripe:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.client().v1.payment_intents.list(params={"limit": 1})
                return self
            except stripe.APIConnectionError:
                time.sleep(0.1)
        raise RuntimeError("localstripe did not start")

    def client(self, timeout_s: float = 5.0) -> stripe.StripeClient:
        return stripe.StripeClient(
            self.key,
            base_addresses={"api": self.url},
            max_network_retries=0,
            http_client=stripe.HTTPXClient(timeout=timeout_s, allow_sync_methods=True),
        )

    def pause(self) -> None:
        """SIGSTOP: connections are still accepted by the kernel, never answered, until
        :meth:`resume`; then the queued requests are processed (the ambiguous case)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def intents(self) -> list[Any]:
        out: list[Any] = []
        after = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if after:
                params["starting_after"] = after
            page = self.client().v1.payment_intents.list(params=params)
            out += page.data
            if not page.has_more or not page.data:
                return out
            after = page.data[-1].id

    def by_order(self) -> dict[str, Counter[str]]:
        """order id -> Counter of its intents' statuses on this server."""
        seen: dict[str, Counter[str]] = {}
        for pi in self.intents():
            order = (pi.to_dict().get("metadata") or {}).get("matchday_order")
            if order:
                seen.setdefault(order, Counter())[pi.status] += 1
        return seen


@contextlib.contextmanager
def two_accounts() -> Iterator[tuple[LocalStripe, LocalStripe]]:
    primary = LocalStripe("sk_test_primary").start()
    try:
        backup = LocalStripe("sk_test_backup").start()
        try:
            yield primary, backup
        finally:
            backup.stop()
    finally:
        primary.stop()


def stripe_settings(
    settings: Settings, primary: LocalStripe, backup: LocalStripe, **more: Any
) -> dict[str, Any]:
    return {
        "payment_gateway": "stripe",
        "stripe_api_key": primary.key,
        "stripe_api_base": primary.url,
        "stripe_backup_api_key": backup.key,
        "stripe_backup_api_base": backup.url,
        "stripe_webhook_secret": "whsec_primary_test_secret",
        "stripe_backup_webhook_secret": "whsec_backup_test_secret",
        # Generous: every SDK call is bounded as a whole (its wait for a thread included), and
        # a test machine shared with others can take seconds to schedule one. Tests of
        # timeouts pass their own (test_payments_hung.py).
        "stripe_timeout_s": 5.0,
        "breaker_failures": 2,
        "breaker_reset_s": 60.0,
        **more,
    }


@dataclass
class PayStack:
    stack: Stack
    router: PaymentRouter
    payments: PaymentsRepository
    primary: LocalStripe
    backup: LocalStripe

    @property
    def gateways(self) -> dict[str, StripeGateway]:
        return {n: g for n, g in self.router.gateways.items() if isinstance(g, StripeGateway)}


@contextlib.asynccontextmanager
async def open_pay_stack(
    settings: Settings, primary: LocalStripe, backup: LocalStripe, **more: Any
) -> AsyncIterator[PayStack]:
    async with open_stack(settings, **stripe_settings(settings, primary, backup, **more)) as st:
        payments = PaymentsRepository(st.ctx.pool)
        s = st.ctx.settings
        router = router_over(stripe_gateways(s, payments), s, payments)
        assert st.ctx.checkout is not None
        st.ctx.checkout.gateway = router
        yield PayStack(st, router, payments, primary, backup)


def charges(ps: PayStack, order_id: str) -> Counter[str]:
    """Statuses of every intent for the order, on both accounts."""
    total: Counter[str] = Counter()
    for server in (ps.primary, ps.backup):
        total += server.by_order().get(order_id, Counter())
    return total


async def filled_cart(stack: Stack, sku: str, qty: int = 1) -> tuple[dict[str, str], str]:
    auth = await stack.session()
    cart = await stack.cart(auth)
    r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku, "qty": qty}, headers=auth)
    assert r.status_code == 201, r.text
    return auth, cart


async def pay(stack: Stack, auth: dict[str, str], cart: str, token: str, key: str = "k1") -> Any:
    return await stack.orders.post(
        "/",
        json={"cart_id": cart, "payment_token": token},
        headers={**auth, "Idempotency-Key": key},
    )
