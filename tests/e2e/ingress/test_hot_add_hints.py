"""The hot add through HAProxy, which sets Serve's two hints on it (issue 12).

Serve then awaits the add directly: no request timeout of its own (the app bounds the add:
tests/integration/test_lean_add.py) and no watch for the client leaving, so an add whose
client hangs up still finishes, and the client's retry by Idempotency-Key gets its answer.
Which requests carry the hints: tests/integration/test_ingress_hot_add.py.

The shared stack's buckets are tiny (run_stack.SHARED: burst 2): each shopper here comes from
an address of its own and makes at most two shopper calls.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import psycopg
import pytest

from tests.e2e.ingress.test_ingress_limits import connect
from tests.e2e.run_stack import RunStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SKU = "BALL-MATCH-5"  # a demo SKU with stock to spare and no per-customer limit


def shopper(stack: RunStack, source: str) -> tuple[str, str]:
    """(bearer token, cart id) of a new shopper from ``source``."""
    transport = httpx.HTTPTransport(local_address=source, verify=stack.verify)
    with httpx.Client(base_url=f"{stack.base}/api/shop", transport=transport) as shop:
        token = shop.post("/session").json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        answer = shop.post("/carts", headers=auth)
        assert answer.status_code == 201, answer.text
        return token, answer.json()["cart_id"]


def holds(stack: RunStack, cart: str) -> list[tuple[str, int]]:
    with psycopg.connect(stack.state()["database_url"]) as conn:
        rows = conn.execute(
            "SELECT sku, qty FROM reservations WHERE cart_id = %s AND status = 'held'", (cart,)
        ).fetchall()
    return [(str(sku), int(qty)) for sku, qty in rows]


def add_request(token: str, cart: str, key: str) -> bytes:
    body = json.dumps({"sku": SKU, "qty": 2}).encode()
    return (
        f"POST /api/shop/carts/{cart}/items HTTP/1.1\r\nHost: shop\r\n"
        f"Authorization: Bearer {token}\r\nIdempotency-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_an_add_whose_client_hangs_up_still_finishes(haproxy_run: RunStack) -> None:
    token, cart = shopper(haproxy_run, "127.0.0.21")
    with connect(haproxy_run, "127.0.0.21") as sock:
        sock.sendall(add_request(token, cart, "left-1"))
        sock.shutdown(socket.SHUT_RDWR)  # gone before any answer
    deadline = time.monotonic() + 15
    while not holds(haproxy_run, cart) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert holds(haproxy_run, cart) == [(SKU, 2)]


def test_an_ordinary_add_is_answered_as_before(haproxy_run: RunStack) -> None:
    token, cart = shopper(haproxy_run, "127.0.0.22")
    transport = httpx.HTTPTransport(local_address="127.0.0.22", verify=haproxy_run.verify)
    with httpx.Client(base_url=f"{haproxy_run.base}/api/shop", transport=transport) as shop:
        answer = shop.post(
            f"/carts/{cart}/items",
            json={"sku": SKU, "qty": 2},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "plain-1"},
        )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["sku"], body["qty"], body["status"]) == (SKU, 2, "held")
    assert holds(haproxy_run, cart) == [(SKU, 2)]
