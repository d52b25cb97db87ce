"""The add lane's HTTP server (matchday/web/add_lane.py) on loopback, around a small ASGI app.

What it must do whoever connects: answer only the add route and its health check, bound what
a client can send and how long it may take, shed past its limit, count every request for the
host, and answer JSON in matchday's shape for every refusal. The shop's real app through the
lane: tests/integration/test_lean_add.py; through HAProxy: tests/e2e/ingress/test_add_lane.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from matchday.web import add_lane
from matchday.web.add_lane import HEALTH_PATH, AddLane, trusted_peers
from tests.http_raw import exchange, read_answer

ROOT = "/api/shop"
ADD = f"{ROOT}/carts/c_a/items"


class Counts:
    """The host's side (matchday.web.add_lane.LaneHooks)."""

    def __init__(self) -> None:
        self.ongoing = 0
        self.most = 0
        self.log: list[tuple[str, int]] = []

    def started(self) -> None:
        self.ongoing += 1
        self.most = max(self.most, self.ongoing)

    def ended(self) -> None:
        self.ongoing -= 1

    def answered(self, method: str, status: int, latency_ms: float) -> None:
        assert latency_ms >= 0
        self.log.append((method, status))


class App:
    """Echoes what it was given; ``gate`` holds it, ``fail`` makes it raise."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.gate: asyncio.Event | None = None
        self.fail: str | None = None  # "before", "mid" or "after" its answer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        body = (await receive())["body"]
        if self.gate is not None:
            await self.gate.wait()
        if self.fail == "before":
            raise RuntimeError("a bug")
        answer = json.dumps({"path": scope["path"], "body": body.decode()}).encode()
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        if self.fail == "mid":
            raise RuntimeError("a bug mid-answer")
        await send({"type": "http.response.body", "body": answer})
        if self.fail == "after":
            raise RuntimeError("a bug after the answer")


class Lane:
    def __init__(self, app: App, lane: AddLane, counts: Counts, port: int) -> None:
        self.app, self.lane, self.counts, self.port = app, lane, counts, port

    async def send(self, data: bytes) -> bytes:
        return await exchange(self.port, data, timeout_s=10)


@pytest.fixture
async def lane() -> AsyncIterator[Lane]:
    app, counts = App(), Counts()
    server = AddLane(app, accepts=lambda p: p == "/carts/c_a/items", root_path=ROOT,
                     max_body=64, max_in_flight=2, hooks=counts)  # fmt: skip
    listening = await server.start("127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    yield Lane(app, server, counts, port)
    await server.close()


def post(body: bytes = b'{"sku":"A"}', path: str = ADD, *extra: bytes) -> bytes:
    head = [f"POST {path} HTTP/1.1".encode(), b"Host: x", b"Connection: close",
            b"Content-Length: %d" % len(body), *extra]  # fmt: skip
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def parse(raw: bytes) -> tuple[int, dict[bytes, bytes], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = dict((k.lower(), v.strip()) for k, _, v in (h.partition(b":") for h in lines[1:]))
    return int(lines[0].split()[1]), headers, json.loads(body) if body else None


def assert_error(raw: bytes, status: int, code: str) -> dict[bytes, bytes]:
    got, headers, body = parse(raw)
    assert got == status, raw
    assert headers[b"content-type"] == b"application/json"
    assert body["code"] == code and isinstance(body["message"], str), body
    return headers


async def test_an_add_reaches_the_app_mounted_at_its_prefix_in_one_answer(lane: Lane) -> None:
    raw = await lane.send(post())
    status, headers, body = parse(raw)
    assert status == 201 and body == {"path": ADD, "body": '{"sku":"A"}'}
    assert int(headers[b"content-length"]) == len(raw.partition(b"\r\n\r\n")[2])
    assert headers[b"connection"] == b"close"  # as the client asked
    scope = lane.app.scopes[0]
    assert (scope["root_path"], scope["path"], scope["method"]) == (ROOT, ADD, "POST")
    assert (b"host", b"x") in scope["headers"]
    assert lane.counts.log == [("POST", 201)] and lane.counts.ongoing == 0


async def test_keep_alive_serves_requests_one_after_another_and_pipelined(lane: Lane) -> None:
    one = post(b"1").replace(b"Connection: close\r\n", b"")
    reader, writer = await asyncio.open_connection("127.0.0.1", lane.port)
    writer.write(one)
    assert (await read_answer(reader))[0] == 201
    writer.write(one + one)  # two in one packet: answered in order
    answers = [await read_answer(reader) for _ in range(2)]
    writer.close()
    assert [a[0] for a in answers] == [201, 201]
    assert len(lane.app.scopes) == 3


async def test_a_client_pipelining_without_end_is_read_no_further_than_its_turn(
    lane: Lane,
) -> None:
    lane.app.gate = asyncio.Event()
    one = post(b"1").replace(b"Connection: close\r\n", b"")
    reader, writer = await asyncio.open_connection("127.0.0.1", lane.port)
    for _ in range(40):  # one packet each, while the first is being answered
        writer.write(one)
        await writer.drain()
        await asyncio.sleep(0.01)
    (connection,) = lane.lane.connections
    assert len(connection.pending) == add_lane.MAX_PIPELINED  # the rest waits in the socket
    lane.app.gate.set()
    answers = [await asyncio.wait_for(read_answer(reader), 5) for _ in range(40)]
    writer.close()
    assert [a[0] for a in answers] == [201] * 40


async def test_the_health_check_says_whether_the_host_takes_adds(lane: Lane) -> None:
    raw = await lane.send(f"GET {HEALTH_PATH} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
    assert parse(raw)[:1] == (200,)
    lane.lane.healthy = lambda: False
    raw = await lane.send(f"GET {HEALTH_PATH} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
    assert assert_error(raw, 503, "unavailable")[b"retry-after"] == b"1"
    assert lane.app.scopes == []


@pytest.mark.parametrize(
    "request_bytes",
    [
        post(path="/api/shop/carts/c_a"),  # another route of the app
        post(path="/api/shop/carts/c_b/items"),  # not what ``accepts`` takes
        b"GET /api/shop/carts/c_a/items HTTP/1.1\r\nConnection: close\r\n\r\n",
        post(path="/zzzzzzzzz/carts/c_a/items"),  # the prefix's length, not the prefix
        b"HEAD /-/add-lane HTTP/1.1\r\nConnection: close\r\n\r\n",
    ],
    ids=["other route", "not accepted", "GET", "other prefix", "HEAD health"],
)
async def test_anything_but_an_add_is_404(lane: Lane, request_bytes: bytes) -> None:
    raw = await lane.send(request_bytes)
    if request_bytes.startswith(b"HEAD"):  # a HEAD answer has headers only
        assert raw.startswith(b"HTTP/1.1 404 ")
    else:
        assert_error(raw, 404, "not_found")
    assert lane.app.scopes == []


async def test_a_target_that_is_not_a_path_is_400_and_the_connection_serves_on(
    lane: Lane,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", lane.port)
    writer.write(b"GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n")  # parses; its URL does not
    status, _, body = await asyncio.wait_for(read_answer(reader), 5)
    assert status == 400 and json.loads(body)["code"] == "bad_request"
    writer.write(post().replace(b"Connection: close\r\n", b""))
    assert (await asyncio.wait_for(read_answer(reader), 5))[0] == 201
    writer.close()


async def test_limits_on_body_and_headers_and_a_malformed_request(lane: Lane) -> None:
    headers = assert_error(await lane.send(post(b"x" * 65)), 413, "payload_too_large")
    assert parse(await lane.send(post(b"x" * 65)))[2]["message"] == "body over 64 bytes"
    assert headers[b"connection"] == b"close"
    huge = b"X-Pad: " + b"a" * (add_lane.MAX_HEADER_BYTES + 1)
    assert_error(await lane.send(post(b"{}", ADD, huge)), 431, "headers_too_large")
    assert_error(await lane.send(b"NOT HTTP\r\n\r\n"), 400, "bad_request")
    upgrade = b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    assert_error(await lane.send(upgrade), 400, "bad_request")
    assert lane.app.scopes == []


async def test_a_slow_request_gets_408_and_an_idle_connection_is_closed(
    lane: Lane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(add_lane, "REQUEST_TIMEOUT_S", 0.2)
    monkeypatch.setattr(add_lane, "IDLE_TIMEOUT_S", 0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", lane.port)
    writer.write(b"POST " + ADD.encode() + b" HTTP/1.1\r\nHost: x\r\n")  # and no more
    assert_error(await asyncio.wait_for(reader.read(), 5), 408, "request_timeout")
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", lane.port)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # never sent a byte: closed
    writer.close()


async def test_past_its_limit_it_sheds_with_retry_after_and_counts_ongoing(lane: Lane) -> None:
    lane.app.gate = asyncio.Event()
    held = [asyncio.create_task(lane.send(post())) for _ in range(2)]
    while lane.counts.ongoing < 2:
        await asyncio.sleep(0.01)
    headers = assert_error(await lane.send(post()), 503, "overloaded")
    assert headers[b"retry-after"] == b"1"
    lane.app.gate.set()
    assert [parse(raw)[0] for raw in await asyncio.gather(*held)] == [201, 201]
    assert lane.counts.most == 2 and lane.counts.ongoing == 0
    assert sorted(s for _, s in lane.counts.log) == [201, 201, 503]
    assert lane.lane.in_flight == 0


async def test_a_failing_app_gets_500_or_a_cut_connection_never_a_hang(lane: Lane) -> None:
    lane.app.fail = "before"
    assert_error(await lane.send(post()), 500, "internal")
    lane.app.fail = "after"  # answered, then raised for the log: the answer stands
    assert parse(await lane.send(post()))[0] == 201
    lane.app.fail = "mid"
    assert await lane.send(post()) == b""
    assert [s for _, s in lane.counts.log] == [500, 201, 500]
    assert lane.counts.ongoing == 0


async def test_the_client_address_is_the_ingress_one_only_from_a_trusted_peer(
    lane: Lane,
) -> None:
    forwarded = b"X-Forwarded-For: 203.0.113.9"
    await lane.send(post(b"{}", ADD, forwarded))
    assert lane.app.scopes[-1]["client"] == ("203.0.113.9", 0)
    lane.lane.trusted, lane.lane.trust_all = frozenset({"10.0.0.1"}), False
    await lane.send(post(b"{}", ADD, forwarded))
    assert lane.app.scopes[-1]["client"][0] == "127.0.0.1"
    assert trusted_peers(None) == ("127.0.0.1",)
    assert trusted_peers(" 10.0.0.1, *,") == ("10.0.0.1", "*")


async def test_closing_lets_an_add_in_flight_finish_and_closes_idle_connections(
    lane: Lane,
) -> None:
    idle_reader, idle = await asyncio.open_connection("127.0.0.1", lane.port)
    lane.app.gate = asyncio.Event()
    busy_reader, busy = await asyncio.open_connection("127.0.0.1", lane.port)
    busy.write(post().replace(b"Connection: close\r\n", b""))
    while lane.counts.ongoing < 1:
        await asyncio.sleep(0.01)
    closing = asyncio.create_task(lane.lane.close())
    assert await asyncio.wait_for(idle_reader.read(), 5) == b""  # idle: closed at once
    assert not closing.done()  # waits for the add in flight
    lane.app.gate.set()
    await asyncio.wait_for(closing, 5)
    status, headers, _ = parse(await asyncio.wait_for(busy_reader.read(), 5))
    assert status == 201 and headers[b"connection"] == b"close"
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", lane.port)
    idle.close()
    busy.close()
