"""The add lane's routing in the real HAProxy Ray runs (ADR 0033), in front of two servers
that say which port answered: a replica's Serve port and its lane, at that port plus
``ADD_LANE_PORT_OFFSET``.

An ordinary add goes to the lane and nothing else does; a lane that stops listening costs no
request: its first refused connection marks it down and the retry goes to the same replica's
Serve port. Through a `matchday run` stack: tests/e2e/ingress/test_add_lane.py.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cluster.ingress_rules import ADD_LANE_PORT_OFFSET
from tests.integration.test_ingress_hot_add import ADD, BODY, free_port, running_haproxy
from tests.unit.test_ingress_rules import render

pytestmark = pytest.mark.integration


class Which(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as HAProxy's connections to a replica

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps({"port": self.server.server_address[1]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def setup(self) -> None:
        super().setup()
        self.server.open.add(self.connection)  # type: ignore[attr-defined]

    def log_message(self, *args: object) -> None:
        pass


def serve(port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), Which)
    server.daemon_threads = True
    server.open = set()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop(server: ThreadingHTTPServer) -> None:
    """As a dying process: the listener and every connection HAProxy keeps to it closed."""
    server.shutdown()
    server.server_close()
    for connection in server.open:  # type: ignore[attr-defined]
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)


@dataclass
class Ingress:
    port: int
    serve_port: int
    lane: ThreadingHTTPServer

    @property
    def lane_port(self) -> int:
        return self.serve_port + ADD_LANE_PORT_OFFSET


def pair_of_ports() -> int:
    """A free port whose lane port is free too."""
    for _ in range(100):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + ADD_LANE_PORT_OFFSET))
            except OSError:
                continue
        return port
    raise AssertionError("no free pair of ports")


@pytest.fixture
def ingress(tmp_path: Path) -> Iterator[Ingress]:
    serve_port = pair_of_ports()
    replica, lane = serve(serve_port), serve(serve_port + ADD_LANE_PORT_OFFSET)
    port = free_port()
    render(tmp_path, loopback=True, trusted=[], ports=(port, free_port(), free_port(), serve_port))
    try:
        with running_haproxy(tmp_path / "haproxy.cfg", port):
            yield Ingress(port, serve_port, lane)
    finally:
        for server in (replica, lane):
            stop(server)


def answered_by(ingress: Ingress, method: str, path: str, body: bytes = b"") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", ingress.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"content-type": "application/json"})
        answer = conn.getresponse()
        text = answer.read()
        assert answer.status == 200, text
    finally:
        conn.close()
    return int(json.loads(text)["port"])


def test_an_ordinary_add_goes_to_the_lane_and_nothing_else_does(ingress: Ingress) -> None:
    assert answered_by(ingress, "POST", ADD, BODY) == ingress.lane_port
    assert answered_by(ingress, "POST", ADD + "?utm=x", BODY) == ingress.serve_port
    assert answered_by(ingress, "GET", ADD) == ingress.serve_port
    assert answered_by(ingress, "POST", "/api/shop/carts", BODY) == ingress.serve_port


def test_a_lane_that_stops_listening_costs_no_request(ingress: Ingress) -> None:
    assert answered_by(ingress, "POST", ADD, BODY) == ingress.lane_port
    stop(ingress.lane)  # refused from now on, long before a health check notices
    time.sleep(0.2)  # HAProxy drops the closed connections from its pool
    for _ in range(5):
        assert answered_by(ingress, "POST", ADD, BODY) == ingress.serve_port
