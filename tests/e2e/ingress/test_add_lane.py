"""The add lane through HAProxy (ADR 0033): HAProxy sends an ordinary add to the shop
replica's second port, the replica counts it in Serve's metrics as its own, and with the lane
down the add goes through Serve's server as before.

HAProxy's own counters (its stats page, CSV) say which backend answered. The lane's HTTP
behaviour: tests/unit/test_add_lane.py; the shop's answers through it:
tests/integration/test_lean_add.py.
"""

from __future__ import annotations

import csv
import io
import socket
import time

import httpx
import pytest

from cluster.serving import haproxy_folder
from tests.e2e.ingress.test_hot_add_hints import SKU, shopper
from tests.e2e.ingress.test_load_shedding import metrics_url
from tests.e2e.run_stack import RunStack
from tests.integration.test_metrics_on_ray import scrape, total

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

LANE = "http-shop-add-lane"
SHOP = "http-shop"


def stats(stack: RunStack) -> list[dict[str, str]]:
    port = stack.settings["RAY_SERVE_HAPROXY_STATS_PORT"]
    text = httpx.get(f"http://127.0.0.1:{port}/stats;csv", timeout=10).text
    return list(csv.DictReader(io.StringIO(text.lstrip("# "))))


def answered(stack: RunStack, backend: str) -> int:
    """2xx answers through ``backend`` so far."""
    row = next(r for r in stats(stack) if r["pxname"] == backend and r["svname"] == "BACKEND")
    return int(row["hrsp_2xx"] or 0)


def lane_servers(stack: RunStack) -> list[dict[str, str]]:
    return [r for r in stats(stack) if r["pxname"] == LANE and r["svname"] != "BACKEND"]


def wait_for_the_lane(stack: RunStack) -> None:
    deadline = time.monotonic() + 120  # HAProxy (re)starts once routes arrive, then checks
    while not any(r["status"] == "UP" for r in lane_servers(stack)):
        assert time.monotonic() < deadline, lane_servers(stack)
        time.sleep(0.5)


def admin(stack: RunStack, command: str) -> str:
    """A command on HAProxy's admin socket (in the stack's own folder: cluster/serving.py)."""
    (path,) = haproxy_folder(stack.scratch / "data").glob("*/admin.sock")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
        sock.sendall(command.encode() + b"\n")
        return b"".join(iter(lambda: sock.recv(65536), b"")).decode()


def add(stack: RunStack, source: str) -> httpx.Response:
    token, cart = shopper(stack, source)
    transport = httpx.HTTPTransport(local_address=source, verify=stack.verify)
    with httpx.Client(base_url=f"{stack.base}/api/shop", transport=transport) as shop:
        return shop.post(f"/carts/{cart}/items", json={"sku": SKU, "qty": 1},
                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip


def shop_requests(url: str) -> float:
    samples = [x for x in scrape(url) if not x[1].get("route", "").startswith("/-/")]
    return total(samples, "ray_serve_num_http_requests_total", application="shop")


def test_an_ordinary_add_takes_the_lane_and_the_replica_counts_it(haproxy_run: RunStack) -> None:
    wait_for_the_lane(haproxy_run)
    url = metrics_url(haproxy_run.pid)
    lane, shop, counted = answered(haproxy_run, LANE), answered(haproxy_run, SHOP), None
    deadline = time.monotonic() + 60  # replicas report every 100 ms, the agent every ~10 s
    while counted != shop_requests(url):  # settled: nothing of earlier tests still arriving
        counted = shop_requests(url)
        assert time.monotonic() < deadline
        time.sleep(2)
    for n in range(3):  # one add per shopper: the shared stack's buckets are tiny
        answer = add(haproxy_run, f"127.0.0.{40 + n}")
        assert answer.status_code == 201, answer.text
        assert answer.json()["status"] == "held"
    assert answered(haproxy_run, LANE) - lane == 3
    assert answered(haproxy_run, SHOP) - shop == 6  # each shopper's session and cart
    while shop_requests(url) != counted + 9:  # all nine, as Serve counts its own
        assert time.monotonic() < deadline + 60, (shop_requests(url), counted)
        time.sleep(1)


def test_with_the_lane_down_an_add_goes_through_serve(haproxy_run: RunStack) -> None:
    wait_for_the_lane(haproxy_run)
    names = [r["svname"] for r in lane_servers(haproxy_run)]
    try:
        for name in names:
            admin(haproxy_run, f"disable server {LANE}/{name}")
        lane, shop = answered(haproxy_run, LANE), answered(haproxy_run, SHOP)
        answer = add(haproxy_run, "127.0.0.45")
        assert answer.status_code == 201, answer.text
        assert answered(haproxy_run, LANE) == lane
        assert answered(haproxy_run, SHOP) - shop == 3  # the session, the cart and the add
    finally:
        for name in names:
            admin(haproxy_run, f"enable server {LANE}/{name}")
