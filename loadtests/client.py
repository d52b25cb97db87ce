"""The shop's HTTP API as a load-test client: one method per call a fan's app makes.

How answers count in Locust's statistics (and so in the capacity report's error rate):
- 2xx is a success;
- 409 (sold out, over the per-fan limit, cart closed) and 410 (hold expired) are successes
  too: under a surge they are the shop working as specified, not failing;
- 429 (rate limited) and 503 (shed, or a dependency down) are failures; an idempotent POST
  or a GET is retried after ``Retry-After`` (capped), with the same Idempotency-Key, as a
  well-behaved app would, and each attempt is counted;
- anything else (401, 422, 5xx, connection errors) is a failure naming the status and code.
"""

from __future__ import annotations

import base64
import logging
import os
from dataclasses import dataclass
from typing import Any

import gevent

from loadtests.acks import AckJournal
from loadtests.config import LoadConfig

log = logging.getLogger(__name__)

BUSINESS_REFUSALS = {409, 410}
RETRYABLE = {429, 503}
# A fan's app waits what the server asks, but a load test must keep its own pace: past this
# a retry is not worth the stalled user.
MAX_RETRY_WAIT_S = 2.0


@dataclass
class Answer:
    status: int
    body: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def code(self) -> str:
        return str(self.body.get("code", "")) if isinstance(self.body, dict) else ""


def new_key() -> str:
    # Base32, not hex: the shop's card-number guard refuses any request whose
    # Idempotency-Key holds 13-19 digits in a row passing Luhn, and a uuid4 hex does about
    # once in a few hundred keys (seen in the smoke surge). Base32 has only six digits.
    return base64.b32encode(os.urandom(15)).decode().lower()


def _json(r: Any) -> Any:
    try:
        return r.json()
    except Exception:  # Serve's own 503 is plain text; an empty body is not JSON either
        return None


def _retry_after(r: Any) -> float:
    try:
        return min(MAX_RETRY_WAIT_S, max(0.0, float(r.headers.get("Retry-After") or 0.5)))
    except (TypeError, ValueError):
        return 0.5


class ShopApi:
    """Calls the shop through a FastHttpUser's client; acknowledgements go to ``acks``."""

    def __init__(self, client: Any, cfg: LoadConfig, acks: AckJournal) -> None:
        self.client = client
        self.cfg = cfg
        self.acks = acks

    def call(
        self,
        method: str,
        path: str,
        *,
        name: str,
        json: Any = None,
        token: str | None = None,
        key: str | None = None,
        params: dict[str, Any] | None = None,
        extra: dict[str, str] | None = None,
        throttled: str | None = None,
    ) -> Answer:
        """One request, retried after 429/503 as the server asks. With ``throttled``, a 429 is
        an answer by design (the ingress limiting a ticket's polls): counted under that name,
        not as a failure, and returned at once for the caller to pace itself."""
        headers = dict(extra or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if key:
            headers["Idempotency-Key"] = key
        retries = self.cfg.retries if (key or method == "GET") else 0
        for attempt in range(retries + 1):
            with self.client.request(
                method, path, json=json, headers=headers, params=params, name=name,
                catch_response=True,
            ) as r:  # fmt: skip
                answer = Answer(r.status_code, _json(r))
                if throttled and answer.status == 429:
                    r.request_meta["name"] = throttled
                    r.success()
                    return answer
                if answer.ok or answer.status in BUSINESS_REFUSALS:
                    r.success()
                    return answer
                r.failure(f"{answer.status} {answer.code or 'error'}")
                if answer.status not in RETRYABLE or attempt == retries:
                    return answer
                wait = _retry_after(r)
            gevent.sleep(wait)
        return answer

    # -- catalogue -------------------------------------------------------------------------

    def list_products(self, **params: Any) -> Answer:
        return self.call("GET", "/api/catalog/products", name="/api/catalog/products",
                         params=params)  # fmt: skip

    def product(self, slug: str) -> Answer:
        return self.call("GET", f"/api/catalog/products/{slug}",
                         name="/api/catalog/products/[slug]")  # fmt: skip

    def best_sellers(self) -> Answer:
        return self.call("GET", "/api/catalog/best-sellers", name="/api/catalog/best-sellers")

    def availability(self, skus: list[str]) -> Answer:
        return self.call("GET", "/api/catalog/availability", name="/api/catalog/availability",
                         params={"sku": skus})  # fmt: skip

    # -- shopper -------------------------------------------------------------------------------

    def session(self) -> tuple[str, str] | None:
        """(customer id, token) of a new fan, or None if the shop refused."""
        a = self.call("POST", "/api/shop/session", name="/api/shop/session", key=new_key())
        return (a.body["customer_id"], a.body["token"]) if a.ok else None

    def cart(self, token: str) -> str | None:
        a = self.call("POST", "/api/shop/carts", name="/api/shop/carts", token=token,
                      key=new_key())  # fmt: skip
        return str(a.body["cart_id"]) if a.ok else None

    def add(self, token: str, customer_id: str, cart_id: str, sku: str, qty: int = 1) -> Answer:
        """Reserve; a 201 is journaled for the audit before anything else happens."""
        a = self.call(
            "POST", f"/api/shop/carts/{cart_id}/items", name="/api/shop/carts/[cart]/items",
            json={"sku": sku, "qty": qty}, token=token, key=new_key(),
        )  # fmt: skip
        if a.status == 201:
            self.acks.add(a.body, cart_id, customer_id)
        return a

    def set_qty(self, token: str, cart_id: str, sku: str, qty: int) -> Answer:
        return self.call(
            "PUT", f"/api/shop/carts/{cart_id}/items/{sku}",
            name="/api/shop/carts/[cart]/items/[sku]", json={"qty": qty}, token=token,
            key=new_key(),
        )  # fmt: skip

    def remove(self, token: str, cart_id: str, sku: str) -> Answer:
        return self.call(
            "DELETE", f"/api/shop/carts/{cart_id}/items/{sku}",
            name="/api/shop/carts/[cart]/items/[sku]", token=token, key=new_key(),
        )  # fmt: skip

    def view_cart(self, token: str, cart_id: str) -> Answer:
        return self.call("GET", f"/api/shop/carts/{cart_id}", name="/api/shop/carts/[cart]",
                         token=token)  # fmt: skip

    def checkout(self, token: str, customer_id: str, cart_id: str, payment_token: str) -> Answer:
        """Pay; a paid order is journaled so the audit can find it paid exactly once."""
        a = self.call(
            "POST", "/api/orders/", name="/api/orders/", token=token, key=new_key(),
            json={"cart_id": cart_id, "payment_token": payment_token},
        )  # fmt: skip
        if a.status == 201 and a.body.get("status") == "paid":
            self.acks.order(a.body, customer_id)
        return a

    # -- admin ---------------------------------------------------------------------------------

    def admin_login(self, api_key: str, totp_code: str) -> str | None:
        a = self.call("POST", "/api/admin/login", name="/api/admin/login",
                      json={"api_key": api_key, "totp_code": totp_code})  # fmt: skip
        return str(a.body["session_token"]) if a.ok else None

    def restock(self, session: str, sku: str, qty: int) -> Answer:
        return self.call(
            "POST", f"/api/admin/stock/{sku}/restock", name="/api/admin/stock/[sku]/restock",
            json={"qty": qty}, token=session, key=new_key(),
        )  # fmt: skip
