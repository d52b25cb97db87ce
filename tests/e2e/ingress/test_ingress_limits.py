"""The HAProxy ingress of `matchday run` over real HTTP: a slow client is cut off while others
are served, oversized requests get matchday's JSON errors, and what HAProxy cannot parse is
refused before any replica sees it (ADR 0020, cluster/ingress_rules.py).

Each test sends from a loopback address of its own, so the shared stack's small per-address
buckets (run_stack.SHARED) never throttle another test's traffic.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from cluster.ingress_rules import (
    HTTP_REQUEST_TIMEOUT_S,
    MAX_HEADER_BYTES,
    MAX_URL_BYTES,
    QUEUE_POLL_WINDOW_S,
    QUEUE_POLLS,
)
from tests.e2e.run_stack import RunStack

# A `matchday run` stack starts within the first test that uses it: minutes on a loaded machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# Ray's default held a half-sent request for 3,600 s. Anything cut well before that was cut
# by matchday's timeout; the margin is for a loaded machine, not a target.
CUT_WITHIN_S = 6 * HTTP_REQUEST_TIMEOUT_S


def connect(stack: RunStack, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(CUT_WITHIN_S)
    sock.connect(("127.0.0.1", stack.port))
    if stack.cert is not None:  # the Python proxy's stack speaks HTTPS only
        context = ssl.create_default_context(cafile=str(stack.cert))
        return context.wrap_socket(sock, server_hostname="127.0.0.1")
    return sock


def read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:  # reset by HAProxy after its answer
        pass
    return data


def raw(stack: RunStack, source: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; (status, headers, body) of the answer."""
    with connect(stack, source) as sock:
        sock.sendall(request)
        data = read_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def assert_json_error(body: bytes, code: str) -> None:
    import json

    answer = json.loads(body)
    assert set(answer) == {"code", "message", "retryable"} and answer["code"] == code, answer


@dataclass
class Slow:
    """A client that trickles header lines, one a second, until the server hangs up."""

    sock: socket.socket
    started: float = field(default_factory=time.monotonic)
    cut_after: float | None = None
    answer: bytes = b""

    def run(self) -> None:
        try:
            self.sock.sendall(b"GET /api/catalog/healthz HTTP/1.1\r\nHost: shop\r\n")
            for n in range(10 * CUT_WITHIN_S):
                # Read the answer as soon as there is one: after it comes a reset.
                if select.select([self.sock], [], [], 1.0)[0]:
                    break
                self.sock.sendall(b"X-Pad-%d: y\r\n" % n)
        except OSError:
            pass
        self.answer = read_all(self.sock)
        self.cut_after = time.monotonic() - self.started
        self.sock.close()


def stays_silent(stack: RunStack) -> tuple[bytes, float]:
    """A connection that never sends a byte: what it read when cut, and after how long."""
    with connect(stack, "127.0.0.4") as sock:
        started = time.monotonic()
        return read_all(sock), time.monotonic() - started


def trickles_a_body(stack: RunStack) -> bytes:
    """A POST whose declared body comes a byte a second: the whole answer."""
    with connect(stack, "127.0.0.6") as sock:
        sock.sendall(
            b"POST /api/shop/session HTTP/1.1\r\nHost: shop\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        try:
            for _ in range(2 * CUT_WITHIN_S):
                time.sleep(1.0)
                sock.sendall(b" ")
        except OSError:
            pass
        return read_all(sock)


@pytest.fixture(scope="module")
def cut_clients(haproxy_run: RunStack) -> Iterator[dict[str, Future[Any]]]:
    """The silent and the trickling client each wait out the ingress's 10 s: started once,
    beside the slowloris test's clients, they cost the suite 10 s instead of 20 more."""
    with ThreadPoolExecutor(2) as pool:
        yield {
            "silent": pool.submit(stays_silent, haproxy_run),
            "trickled": pool.submit(trickles_a_body, haproxy_run),
        }


@pytest.mark.usefixtures("cut_clients")  # they run while this test's slow clients do
def test_a_slowloris_client_is_cut_off_while_normal_traffic_flows(haproxy_run: RunStack) -> None:
    slow = [Slow(connect(haproxy_run, "127.0.0.4")) for _ in range(8)]
    threads = [threading.Thread(target=s.run, daemon=True) for s in slow]
    for t in threads:
        t.start()
    served = []
    transport = httpx.HTTPTransport(local_address="127.0.0.5")
    with httpx.Client(base_url=haproxy_run.base, transport=transport, timeout=30.0) as client:
        while any(t.is_alive() for t in threads):
            served.append(client.get("/api/catalog/healthz").status_code)
            assert time.monotonic() - slow[0].started < 2 * CUT_WITHIN_S, "slow clients held"
            time.sleep(0.5)
    assert served and set(served) == {200}, served
    for s in slow:
        assert s.cut_after is not None and s.cut_after < CUT_WITHIN_S, s.cut_after
        # HAProxy's connection layer answers a request whose headers never ended (408,
        # before any rule or error file applies: module doc of cluster/ingress_rules.py).
        assert s.answer.startswith(b"HTTP/1.1 408"), s.answer[:200]


def test_a_silent_connection_is_closed(cut_clients: dict[str, Future[Any]]) -> None:
    data, took = cut_clients["silent"].result(timeout=2 * CUT_WITHIN_S)
    assert data == b""  # nothing was asked, so nothing is answered
    assert took < CUT_WITHIN_S


def test_a_trickled_body_gets_a_json_408(cut_clients: dict[str, Future[Any]]) -> None:
    data = cut_clients["trickled"].result(timeout=3 * CUT_WITHIN_S)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), data[:300]
    assert_json_error(body, "request_timeout")


def test_oversized_urls_and_headers_get_json(haproxy_run: RunStack) -> None:
    transport = httpx.HTTPTransport(local_address="127.0.0.7")
    with httpx.Client(base_url=haproxy_run.base, transport=transport, timeout=30.0) as client:
        long_url = client.get("/api/catalog/products/" + "a" * (MAX_URL_BYTES + 100))
        assert long_url.status_code == 414
        assert_json_error(long_url.content, "uri_too_long")
        big = client.get("/api/catalog/healthz", headers={"X-Big": "b" * (MAX_HEADER_BYTES + 100)})
        assert big.status_code == 431
        assert_json_error(big.content, "headers_too_large")
        many = {f"X-Many-{n}": "m" * 200 for n in range(MAX_HEADER_BYTES // 200 + 5)}
        assert client.get("/api/catalog/healthz", headers=many).status_code == 431
        # Just under both limits: served.
        ok = client.get("/api/catalog/healthz", headers={"X-Big": "b" * (MAX_HEADER_BYTES - 500)})
        assert ok.status_code == 200


def test_what_haproxy_cannot_parse_is_refused_with_400(haproxy_run: RunStack) -> None:
    """A NUL in a header, or headers past HAProxy's buffer: its parser refuses them before
    any rule runs, with its built-in page (no JSON is possible there in HAProxy 2.8)."""
    nul = b"GET /api/catalog/healthz HTTP/1.1\r\nHost: shop\r\nX-Odd: a\x00b\r\n\r\n"
    status, headers, _ = raw(haproxy_run, "127.0.0.8", nul)
    assert status == 400 and headers.get("connection") == "close"
    huge = b"GET /api/catalog/healthz HTTP/1.1\r\nHost: shop\r\nX-Huge: %s\r\n\r\n" % (
        b"h" * 20_000
    )
    status, _, _ = raw(haproxy_run, "127.0.0.8", huge)
    assert status == 400


def test_a_tickets_polls_past_its_budget_are_answered_by_the_ingress(haproxy_run: RunStack) -> None:
    """A waiting-room ticket's status polls and streams share a budget per ticket; past it
    HAProxy answers 429 itself, so a bot's polling never queues in the shop replica."""
    drop = "/api/shop/drops/d_aaaaaaaaaaaaaaaa"
    transport = httpx.HTTPTransport(local_address="127.0.0.13")
    with httpx.Client(base_url=haproxy_run.base, transport=transport, timeout=30.0) as client:

        def by_ingress(answer: httpx.Response) -> bool:
            if answer.status_code != 429 or "this ticket" not in answer.text:
                return False
            assert_json_error(answer.content, "rate_limited")
            assert answer.headers["retry-after"] == str(QUEUE_POLL_WINDOW_S)
            return True

        # The ingress does not judge the ticket (the app does, with 422): it counts it.
        first = [client.get(f"{drop}/status", params={"ticket": "mdt1.a"}) for _ in range(5)]
        assert [by_ingress(a) for a in first].count(False) == QUEUE_POLLS, [
            (a.status_code, a.text) for a in first
        ]
        assert all(a.status_code == 422 for a in first if not by_ingress(a))
        assert by_ingress(client.get(f"{drop}/events", params={"ticket": "mdt1.a"}))
        # Another ticket has a budget of its own; a request with no ticket is the app's.
        assert not by_ingress(client.get(f"{drop}/status", params={"ticket": "mdt1.b"}))
        assert all(not by_ingress(client.get(f"{drop}/status")) for _ in range(4))
        # Refused polls count too (a bot that keeps polling stays refused); HAProxy weighs the
        # previous window into the rate, so a ticket that waits two windows is answered again.
        time.sleep(2 * QUEUE_POLL_WINDOW_S + 1)
        assert not by_ingress(client.get(f"{drop}/status", params={"ticket": "mdt1.a"}))
