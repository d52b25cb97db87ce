"""Load shedding: past max_queued_requests, Serve answers 503 with Retry-After at once, in
matchday's JSON shape, and the engine sees nothing of the refused requests."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest

from cluster.serving import deploy, load_config
from tests.e2e.conftest import Served
from tests.e2e.run_stack import RunStack
from tests.integration.test_metrics_on_ray import scrape, total

# A `matchday run` stack starts within the first test that uses it: minutes on a loaded machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


# A demo SKU without a per-customer limit and 500 units: every refusal here is a shed one.
SKU = "BALL-MATCH-5"


def tiny_shop(config: dict[str, Any]) -> dict[str, Any]:
    shop = copy.deepcopy(next(a for a in config["applications"] if a["name"] == "shop"))
    shop["name"] = "shop-tiny"
    shop["route_prefix"] = "/api/shop-tiny"
    shop["args"]["settings"] = {"rate_limit_per_s": 10_000.0, "rate_limit_burst": 10_000}
    shop["deployments"] = [
        {
            "name": "Shop",
            "max_ongoing_requests": 1,
            "max_queued_requests": 1,
            "backpressure_config": {"status_code": 503, "retry_after_s": 1},
            "autoscaling_config": {"min_replicas": 1, "max_replicas": 1},
        }
    ]
    return shop


def reserved(stack: RunStack) -> int:
    with psycopg.connect(stack.state()["database_url"]) as conn:
        row = conn.execute("SELECT reserved FROM inventory WHERE sku = %s", (SKU,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("ingress", ["haproxy", "python"])
async def test_a_surge_past_the_queue_bound_is_shed_with_a_json_503_and_retry_after(
    ingress: str, request: pytest.FixtureRequest
) -> None:
    """Serve's own refusal (its queue is full, before any matchday code runs) is matchday's
    JSON with Retry-After in both ingress modes: HAProxy rewrites Serve's plain text, the
    Python proxy answers it so (cluster/serve_hook.py)."""
    stack: RunStack = request.getfixturevalue(f"{ingress}_run")
    stack.deploy_extra(tiny_shop(load_config()))
    before = reserved(stack)
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.10", verify=stack.verify)
    async with httpx.AsyncClient(
        base_url=f"{stack.base}/api/shop-tiny", transport=transport, timeout=60.0
    ) as shop:
        auth = {"Authorization": f"Bearer {(await shop.post('/session')).json()['token']}"}
        cart = (await shop.post("/carts", headers=auth)).json()["cart_id"]

        async def add() -> httpx.Response:
            return await shop.post(f"/carts/{cart}/items", json={"sku": SKU}, headers=auth)

        answers = await asyncio.gather(*(add() for _ in range(60)))
    codes = [r.status_code for r in answers]
    assert set(codes) <= {201, 503}, codes
    assert codes.count(503) > 0, "nothing was shed"
    for shed in (r for r in answers if r.status_code == 503):
        assert shed.headers["content-type"].startswith("application/json")
        assert shed.json() == {
            "code": "overloaded",
            "message": shed.json()["message"],
            "retryable": True,
        }
        assert int(shed.headers["Retry-After"]) >= 1
    # Only what was acknowledged holds stock: a shed request changed nothing.
    assert reserved(stack) - before == codes.count(201)
    if ingress == "haproxy":
        counted_by_the_replica(stack, sent=2 + len(answers), shed=codes.count(503))


def counted_by_the_replica(stack: RunStack, *, sent: int, shed: int) -> None:
    """With HAProxy's per-request metrics off (ADR 0032), Serve's HTTP metrics still count
    every request the app answered and every one its replica shed, under the same names the
    alerts and the dashboard read (cluster/monitoring)."""
    url = metrics_url(stack.pid)
    deadline = time.monotonic() + 60  # replicas report every 100 ms, the agent every ~10 s
    while True:
        # HAProxy's health checks of the replica count too, under their own routes.
        samples = [x for x in scrape(url) if not x[1].get("route", "").startswith("/-/")]
        requests = total(samples, "ray_serve_num_http_requests_total", application="shop-tiny")
        refused = total(
            samples,
            "ray_serve_num_http_error_requests_total",
            application="shop-tiny",
            error_code="503",
        )
        if requests == sent and refused == shed:
            return
        assert time.monotonic() < deadline, (requests, refused, sent, shed)
        time.sleep(1)


def metrics_url(pid: int) -> str:
    """Ray's Prometheus endpoint of the stack under ``pid``: the port Ray wrote into the
    session directory its processes name on their command lines."""
    for proc in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            for arg in proc.cmdline():
                name, _, folder = arg.partition("=")
                if name in ("--session-dir", "--session_dir") and folder:
                    (port,) = Path(folder).glob("metrics_export_port_*")
                    return f"http://127.0.0.1:{port.read_text().strip()}/metrics"
    raise AssertionError(f"no Ray session under pid {pid}")


async def test_a_client_over_its_rate_limit_over_http_gets_429_with_retry_after(
    served: Served,
) -> None:
    port = int(served.base.rsplit(":", 1)[1])
    config = load_config(settings=served.settings.payload(), port=port)
    limited = copy.deepcopy(next(a for a in config["applications"] if a["name"] == "shop"))
    limited["name"] = "shop-limited"
    limited["route_prefix"] = "/api/shop-limited"
    limited["args"]["settings"] = {
        **limited["args"]["settings"],
        "rate_limit_per_s": 0.5,
        "rate_limit_burst": 3,
    }
    deploy({**config, "applications": [*config["applications"], limited]}, say=lambda _: None)
    try:
        async with served.client("/api/shop-limited") as shop:
            auth = {"Authorization": f"Bearer {(await shop.post('/session')).json()['token']}"}
            codes = [(await shop.post("/carts", headers=auth)).status_code for _ in range(5)]
            assert codes[:3] == [201, 201, 201] and codes[-1] == 429, codes
            r = await shop.post("/carts", headers=auth)
            assert r.status_code == 429 and r.json()["code"] == "rate_limited"
            assert int(r.headers["Retry-After"]) >= 1
    finally:
        deploy(config, say=lambda _: None)
