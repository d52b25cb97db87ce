"""Serve's per-request hint headers are not the client's to send, on either ingress.

Ray 2.60 reads ``x-request-timeout-seconds`` (a non-positive value turns the request timeout
off) and ``x-request-disconnect-disabled`` (``?1``: keep working for a client that left)
from every request, meant for its own HAProxy. From a client they would let anyone hold a
replica's request slots for as long as they like, and a value that is not UTF-8 crashed the
parse. The ingress drops them (cluster/ingress_rules.py, cluster/serve_hook.py).
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.ingress.test_ingress_limits import raw
from tests.e2e.run_stack import RunStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def healthz(*hints: bytes) -> bytes:
    return (
        b"GET /api/catalog/healthz HTTP/1.1\r\nHost: shop\r\n"
        + b"".join(hints)
        + b"Connection: close\r\n\r\n"
    )


@pytest.mark.parametrize("ingress", ["haproxy_run", "python_run"])
def test_a_clients_timeout_and_disconnect_hints_are_ignored(
    ingress: str, request: pytest.FixtureRequest
) -> None:
    stack: RunStack = request.getfixturevalue(ingress)
    # Honoured, a 1 ms timeout would end the request with Serve's 408.
    status, _, body = raw(stack, "127.0.0.10", healthz(b"x-request-timeout-seconds: 0.001\r\n"))
    assert status == 200 and json.loads(body)["status"] == "ok", body
    # Bytes that are not UTF-8 in both: a clear answer, not a crash (HAProxy drops the
    # headers; behind the Python proxy the app's header check refuses them).
    hostile = healthz(
        b"x-request-timeout-seconds: \xe9\xff\r\n", b"x-request-disconnect-disabled: \xff\r\n"
    )
    status, _, body = raw(stack, "127.0.0.10", hostile)
    answer = json.loads(body)
    assert (status, answer.get("status") or answer.get("code")) in {
        (200, "ok"),
        (400, "invalid_header"),
    }, body
