# ruff: noqa: F811 - pytest fixtures are imported, then named as parameters
"""A single-machine stack listens on loopback only, in both ingress modes (ADR 0006).

Every process of the stack is looked at: this test process (the Ray driver), what it started
(GCS, raylet, Ray's workers and Serve's actors under the raylet, HAProxy under its manager),
or, for the HAProxy mode, the ``matchday run`` process and its tree. Processes of other
stacks on the same machine are not ours and are ignored.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.conftest import Served, free_port, served  # noqa: F401 - fixture
from tests.e2e.run_stack import matchday_run

pytestmark = pytest.mark.e2e

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def listeners(root: psutil.Process) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every TCP listener of root and its descendants."""
    found = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            name = proc.name()
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    found.append((name, conn.laddr.ip, conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def public(found: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    return [entry for entry in found if entry[1] not in LOOPBACK]


def test_the_python_proxy_stack_listens_on_loopback_only(served: Served) -> None:
    found = listeners(psutil.Process(os.getpid()))
    names = {name for name, _, _ in found}
    assert any(n.startswith("ray::ServeReplica") for n in names), names
    assert any(n.startswith("ray::ProxyActor") for n in names), names
    assert public(found) == []


def test_the_haproxy_stack_of_the_run_command_listens_on_loopback_only() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="matchday-binds-"))
    port = free_port()
    try:
        with matchday_run(
            scratch,
            MATCHDAY_INGRESS="haproxy",
            MATCHDAY_HTTP_PORT=str(port),
            # Other stacks on this machine may hold HAProxy's default 8404 and 9101.
            RAY_SERVE_HAPROXY_STATS_PORT=str(stats_port := free_port()),
            RAY_SERVE_HAPROXY_METRICS_PORT=str(metrics_port := free_port()),
            # Small buckets, so that whose bucket a request drew from shows (client_addresses).
            MATCHDAY_RATE_LIMIT_PER_S="0.01",
            MATCHDAY_RATE_LIMIT_BURST="2",
        ) as (_, pid):
            deadline = time.monotonic() + 240
            while not any(
                n == "haproxy" and p == port for n, _, p in listeners(psutil.Process(pid))
            ):
                assert time.monotonic() < deadline, "HAProxy never listened on the HTTP port"
                time.sleep(1)  # the manager (re)starts HAProxy once routes arrive
            time.sleep(2)  # and the replicas their servers
            found = listeners(psutil.Process(pid))
            names = {name for name, _, _ in found}
            assert any(n.startswith("ray::ServeReplica") for n in names), names
            assert {stats_port, metrics_port} <= {p for name, _, p in found if name == "haproxy"}
            assert public(found) == []
            client_addresses(port)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def client_addresses(port: int) -> None:
    """Behind HAProxy each shopper keeps its own address (per-IP limits and fraud velocity),
    and a client cannot pick one with its own X-Forwarded-For. Loopback is 127.0.0.0/8, so
    127.0.0.2 and .3 are two distinct clients that uvicorn does not trust as proxies."""

    def post(source: str, spoof: str) -> int:
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(transport=transport, timeout=30.0) as client:
            r = client.post(
                f"http://127.0.0.1:{port}/api/shop/session",
                headers={"X-Forwarded-For": spoof},
            )
        return r.status_code

    # The anonymous bucket (burst 2) is keyed by client address: 127.0.0.2 spends its own,
    # whatever addresses it claims to forward for.
    assert [post("127.0.0.2", f"203.0.113.{n}") for n in range(3)] == [201, 201, 429]
    assert post("127.0.0.3", "203.0.113.0") == 201  # another shopper is not throttled
