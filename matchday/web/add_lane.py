"""The add lane: a second, minimal HTTP/1.1 server in the shop replica for the hot add.

HAProxy sends an ordinary add-to-cart here instead of to the replica's Serve server (ADR
0033). Through Serve an add paid for uvicorn's ASGI cycle, Serve's request wrapper (request
ids, metadata, route naming, a queue slot, metrics) and two writes per answer: about half of
the shop replica's CPU per add, before matchday's own code ran. This server parses with the
same parser (httptools), calls the same ASGI app, and answers in one write.

It is narrow on purpose:

- it answers ``POST`` to the add route (``accepts``) and its own health check, and 404 to
  anything else, so no other route loses Serve's request timeout;
- one request at a time per connection (HAProxy does not pipeline to servers; a client that
  does is read no further past ``MAX_PIPELINED`` waiting requests), a body of at
  most ``max_body`` bytes (413), headers within ``MAX_HEADER_BYTES`` (431), a whole request
  within ``REQUEST_TIMEOUT_S`` of its first byte and an idle connection closed after
  ``IDLE_TIMEOUT_S``: a client that reaches the port directly gets no more than through the
  ingress;
- at most ``max_in_flight`` requests at once; past that it sheds with matchday's 503;
- the answer is buffered whole (an add's is a few hundred bytes), never streamed.

Every error it answers itself is JSON in matchday's shape. ``LaneHooks`` lets the host (the
Serve replica) count each request where Serve counts its own, for autoscaling and metrics.
Tested without Ray in tests/integration/test_add_lane.py, and through HAProxy in
tests/e2e/ingress/test_add_lane.py.
"""

from __future__ import annotations

import asyncio
import http
import logging
import time
from collections import deque
from collections.abc import Callable, Collection
from typing import Any, Protocol, cast
from urllib.parse import unquote

import httptools
from starlette.types import ASGIApp, Message

from matchday.domain.errors import MatchdayError, Overloaded
from matchday.web.errors import error_response, matchday_error_response

log = logging.getLogger(__name__)

HEALTH_PATH = "/-/add-lane"
MAX_HEADER_BYTES = 16 * 1024
REQUEST_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 90.0  # uvicorn's keep-alive in Serve's own replica server
RETRY_AFTER_S = 1.0
MAX_PIPELINED = 8  # requests parsed ahead of the one being answered (HAProxy sends one)
BACKLOG = 2048  # Serve's own server's (uvicorn's default): a surge opens connections at once


class LaneHooks(Protocol):
    """What the host counts (the Serve replica: its ongoing requests, which its autoscaling
    reads, and its HTTP metrics)."""

    def started(self) -> None:
        """A request went to the app."""

    def ended(self) -> None:
        """...and came back (one call for each ``started``)."""

    def answered(self, method: str, status: int, latency_ms: float) -> None:
        """Any request but a health check was answered."""


class AddLane:
    """The server's state, shared by its connections."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        accepts: Callable[[str], bool],
        root_path: str = "",
        max_body: int = 64 * 1024,
        max_in_flight: int = 512,
        trusted: Collection[str] = ("127.0.0.1",),
        hooks: LaneHooks | None = None,
        healthy: Callable[[], bool] = lambda: True,
    ) -> None:
        self.app = app
        self.accepts = accepts
        self.root_path = root_path
        self.max_body = max_body
        self.max_in_flight = max_in_flight
        self.trust_all = "*" in trusted
        self.trusted = frozenset(trusted)
        self.hooks = hooks
        self.healthy = healthy
        self.in_flight = 0
        self.served = 0
        self.closing = False
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, backlog=BACKLOG
        )
        return self._server

    async def close(self, grace_s: float = 10.0) -> None:
        """Stop listening, close idle connections, let the adds in flight finish (each then
        closes its connection) for up to ``grace_s``."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self.closing = True
        for connection in list(self.connections):
            if not connection.busy:
                connection._close()
        deadline = time.monotonic() + grace_s
        while self.in_flight and time.monotonic() < deadline:  # noqa: ASYNC110 - a poll at close
            await asyncio.sleep(0.05)

    def client_of(self, peer: Any, forwarded: bytes | None) -> tuple[str, int] | None:
        """The client's address: the one the ingress names, if the peer is trusted."""
        if not peer:
            return None
        host, port = peer[0], peer[1]
        if forwarded and (self.trust_all or host in self.trusted):
            return (forwarded.decode("latin-1").split(",")[-1].strip(), 0)
        return (host, port)


def trusted_peers(raw: str | None) -> tuple[str, ...]:
    """uvicorn's ``FORWARDED_ALLOW_IPS`` (comma-separated; ``*`` is anyone), as Serve's own
    replica server reads it, so both ports trust the same ingress."""
    return tuple(p.strip() for p in (raw or "127.0.0.1").split(",") if p.strip())


class _Request:
    __slots__ = ("body", "header_bytes", "headers", "refused", "size", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.size = 0
        self.refused: tuple[int, str, str] | None = None  # status, code, message


class _Connection(asyncio.Protocol):
    def __init__(self, lane: AddLane) -> None:
        self.lane = lane
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer: Any = None
        self.local: Any = None
        self.request: _Request | None = None
        self.pending: deque[tuple[_Request, str, bool]] = deque()
        self.busy = False
        self.closed = False
        self.gone = asyncio.get_running_loop().create_future()
        self.timer: asyncio.TimerHandle | None = None

    # ---- asyncio.Protocol ----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.peer = transport.get_extra_info("peername")
        self.local = transport.get_extra_info("sockname")
        self.lane.connections.add(self)
        self._arm(IDLE_TIMEOUT_S)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "bad_request", "protocol upgrades are not served here")
        except httptools.HttpParserError:
            self._fail(400, "bad_request", "malformed HTTP request")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lane.connections.discard(self)
        self._disarm()
        if not self.gone.done():
            self.gone.set_result(None)

    # ---- httptools callbacks ----

    def on_message_begin(self) -> None:
        self.request = _Request()
        if not self.busy:
            self._arm(REQUEST_TIMEOUT_S)

    def on_url(self, url: bytes) -> None:
        assert self.request is not None
        self.request.url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.request is not None
        self.request.headers.append((name.lower(), value))
        self._count_head(len(name) + len(value))

    def on_body(self, body: bytes) -> None:
        request = self.request
        assert request is not None
        request.size += len(body)
        if request.size > self.lane.max_body:
            # The app's own answer (matchday.web.base.BodyLimit), when ``max_body`` is its limit.
            limit = self.lane.max_body
            request.refused = (413, "payload_too_large", f"body over {limit} bytes")
            request.body.clear()
        elif request.refused is None:
            request.body.append(body)

    def on_message_complete(self) -> None:
        request, self.request = self.request, None
        assert request is not None
        method = self.parser.get_method().decode("ascii", "replace")
        self.pending.append((request, method, self.parser.should_keep_alive()))
        if len(self.pending) >= MAX_PIPELINED and self.transport is not None:
            self.transport.pause_reading()  # a client pipelining without end waits its turn
        if not self.busy:
            self._next()

    # ---- serving ----

    def _count_head(self, size: int) -> None:
        request = self.request
        assert request is not None
        request.header_bytes += size
        if request.header_bytes > MAX_HEADER_BYTES and request.refused is None:
            request.refused = (431, "headers_too_large", "the request headers are too large")
            request.headers.clear()

    def _next(self) -> None:
        if not self.pending or self.closed:
            return
        self.busy = True
        self._disarm()
        request, method, keep_alive = self.pending.popleft()
        if len(self.pending) == MAX_PIPELINED - 1 and self.transport is not None:
            self.transport.resume_reading()
        asyncio.get_running_loop().create_task(self._serve(request, method, keep_alive))

    async def _serve(self, request: _Request, method: str, keep_alive: bool) -> None:
        lane = self.lane
        started = time.perf_counter()
        status, head, body = await self._answer(request, method)
        if lane.hooks is not None and head is not _HEALTH:
            lane.hooks.answered(method, status or 500, (time.perf_counter() - started) * 1e3)
        if status == 0:  # the app failed after its answer had begun: cut the connection
            self._close()
            return
        keep_alive = keep_alive and not lane.closing
        self._write(status, head, body, keep_alive)
        self.busy = False
        if keep_alive and not self.closed:
            if self.pending:
                self._next()
            else:
                self._arm(REQUEST_TIMEOUT_S if self.request is not None else IDLE_TIMEOUT_S)
        else:
            self._close()

    async def _answer(
        self, request: _Request, method: str
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Status, headers and body; status 0 if the app failed mid-answer."""
        lane = self.lane
        if request.refused is not None:
            return _error(*request.refused)
        try:
            url = httptools.parse_url(request.url)
        except httptools.HttpParserInvalidURLError:  # an absolute form the request parser let by
            return _error(400, "bad_request", "the request target is not a path")
        raw_path = url.path or b"/"
        path = unquote(raw_path.decode("latin-1"))
        if path == HEALTH_PATH and method == "GET":
            if lane.healthy():
                return 200, _HEALTH, b'{"status":"ok"}'
            return _error(503, "unavailable", "this replica is not taking adds")
        root = lane.root_path
        if method != "POST" or not path.startswith(root) or not lane.accepts(path[len(root) :]):
            return _error(404, "not_found", f"{method} {path} is not served on this port")
        if lane.in_flight >= lane.max_in_flight:
            return _respond(matchday_error_response(Overloaded(RETRY_AFTER_S)))
        lane.in_flight += 1
        if lane.hooks is not None:
            lane.hooks.started()
        try:
            return await self._call(request, method, url.query or b"", raw_path, path)
        finally:
            lane.in_flight -= 1
            lane.served += 1
            if lane.hooks is not None:
                lane.hooks.ended()

    async def _call(
        self, request: _Request, method: str, query: bytes, raw_path: bytes, path: str
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        scope = self._scope(request, method, query, raw_path, path)
        body = b"".join(request.body)
        delivered = False
        status = 0
        head: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        complete = False

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await self.gone  # ASGI: after the body, the next message is the disconnect
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status, head, complete
            if message["type"] == "http.response.start":
                status, head = message["status"], list(message.get("headers", ()))
            elif message["type"] == "http.response.body" and not complete:
                chunks.append(message.get("body", b""))
                complete = not message.get("more_body", False)

        try:
            await self.lane.app(scope, receive, send)
        except Exception as exc:
            # As a server does: the app's answer if it finished one (matchday's handlers
            # answer, then re-raise for the log), else a 500 or a cut connection.
            log.exception("the add lane's app failed on %s %s", method, path)
            if complete:
                return status, head, b"".join(chunks)
            if status:
                return 0, [], b""
            if isinstance(exc, MatchdayError):
                return _respond(matchday_error_response(exc))
            return _error(500, "internal", "internal error; it has been logged")
        if not status or not complete:
            log.error("the add lane's app did not finish its answer to %s %s", method, path)
            return (0, [], b"") if status else _error(500, "internal", "no answer")
        return status, head, b"".join(chunks)

    def _scope(
        self, request: _Request, method: str, query: bytes, raw_path: bytes, path: str
    ) -> dict[str, Any]:
        forwarded = None
        for name, value in request.headers:
            if name == b"x-forwarded-for":
                forwarded = value
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.local[:2] if self.local else None,
            "client": self.lane.client_of(self.peer, forwarded),
            "scheme": "http",
            "method": method,
            "root_path": self.lane.root_path,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": request.headers,
            "state": {},
        }

    def _write(
        self, status: int, head: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool
    ) -> None:
        if self.transport is None or self.closed:
            return
        lines = [_status_line(status)]
        length = False
        for name, value in head:
            if name.lower() == b"content-length":
                length = True
            lines.append(b"%s: %s\r\n" % (name, value))
        if not length:
            lines.append(b"content-length: %d\r\n" % len(body))
        if not keep_alive:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        lines.append(body)
        self.transport.write(b"".join(lines))  # one write per answer: one send(2)

    def _fail(self, status: int, code: str, message: str) -> None:
        _, head, body = _error(status, code, message)
        self._write(status, head, body, keep_alive=False)
        self._close()

    def _close(self) -> None:
        self._disarm()
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self.timer = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expire(self) -> None:
        self.timer = None
        if self.request is not None and not self.busy:  # a request began and did not finish
            self._fail(408, "request_timeout", "the request was not received in time")
        elif not self.busy:
            self._close()


_HEALTH = [(b"content-type", b"application/json")]
_STATUS_LINES: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")
    return line


def _respond(response: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = [(k, v) for k, v in response.raw_headers if k != b"content-length"]
    return response.status_code, headers, bytes(response.body)


def _error(status: int, code: str, message: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    retry = {"retry_after_s": RETRY_AFTER_S} if status == 503 else {}
    return _respond(error_response(status, code, message, retryable=status >= 500, **retry))
