"""A single-machine stack listens on loopback only, in both ingress modes (ADR 0006).

Every process of the stack is looked at: this test process (the Ray driver), what it started
(GCS, raylet, Ray's workers and Serve's actors under the raylet, HAProxy under its manager),
or, for the HAProxy mode, the ``matchday run`` process and its tree. Processes of other
stacks on the same machine are not ours and are ignored. Also here: which client address
the replicas see, in both ingress modes (ADR 0020).
"""

from __future__ import annotations

import os
import time

import httpx
import psutil
import pytest

from tests.e2e.conftest import Served
from tests.e2e.run_stack import RunStack

# A `matchday run` stack starts within the first test that uses it: minutes on a loaded machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

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


def test_the_haproxy_stack_of_the_run_command_listens_on_loopback_only(
    haproxy_run: RunStack,
) -> None:
    stats_port = int(haproxy_run.settings["RAY_SERVE_HAPROXY_STATS_PORT"])
    metrics_port = int(haproxy_run.settings["RAY_SERVE_HAPROXY_METRICS_PORT"])
    deadline = time.monotonic() + 240
    while not any(
        n == "haproxy" and p == haproxy_run.port
        for n, _, p in listeners(psutil.Process(haproxy_run.pid))
    ):
        assert time.monotonic() < deadline, "HAProxy never listened on the HTTP port"
        time.sleep(1)  # the manager (re)starts HAProxy once routes arrive
    time.sleep(2)  # and the replicas their servers
    found = listeners(psutil.Process(haproxy_run.pid))
    names = {name for name, _, _ in found}
    assert any(n.startswith("ray::ServeReplica") for n in names), names
    assert {stats_port, metrics_port} <= {p for name, _, p in found if name == "haproxy"}
    assert public(found) == []


@pytest.mark.parametrize("ingress", ["haproxy", "python"])
def test_a_client_cannot_choose_its_own_rate_limit_bucket(
    ingress: str, request: pytest.FixtureRequest
) -> None:
    """The anonymous bucket (burst 2, SHARED in run_stack.py) is keyed by the client's
    address: whoever the shopper claims to be in X-Forwarded-For, it draws from its own.
    Fraud rules record the same address (request.client)."""
    stack: RunStack = request.getfixturevalue(f"{ingress}_run")

    def post(source: str, forwarded: str | None = None) -> int:
        transport = httpx.HTTPTransport(local_address=source, verify=stack.verify)
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        with httpx.Client(transport=transport, timeout=30.0) as client:
            return client.post(f"{stack.base}/api/shop/session", headers=headers).status_code

    # A client on loopback (the case: uvicorn trusts loopback peers) naming others.
    assert [post("127.0.0.1", f"203.0.113.{n}") for n in range(3)] == [201, 201, 429]
    assert post("127.0.0.3", "203.0.113.0") == 201  # another shopper is not throttled
    # Behind the trusted load balancer (127.0.0.9): the address it appended is the client,
    # whatever the client wrote before it.
    assert [post("127.0.0.9", f"198.51.100.{n}, 192.0.2.7") for n in range(3)] == [
        201,
        201,
        429,
    ]
    assert post("127.0.0.9", "192.0.2.8") == 201
    # The balancer's own requests (no header) are its own client.
    assert post("127.0.0.9") == 201
