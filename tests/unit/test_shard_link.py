"""The direct link to a shard (actors/shard_link.py, ADR 0031), over real loopback sockets
with a fake shard behind it and a fake Ray call beside it: batches answered over the link,
anything odd carried by the fallback, and the link found again after a shard restarts."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

import actors.shard_link as shard_link
from actors.shard_link import (
    BLOCKED_RETRY_S,
    FRAME,
    MAX_FRAME,
    RETRY_AFTER_S,
    Endpoint,
    LinkServer,
    ShardLinks,
)
from matchday.inventory.wire import WireMutation, WireOutcome
from tests.fakes import ManualClock


class Shard:
    """Answers each mutation with its request id; counts what it applied."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.server = LinkServer(self.apply)
        self.gate: asyncio.Event | None = None

    async def apply(self, batch: list[WireMutation]) -> list[WireOutcome]:
        if self.gate is not None:
            await self.gate.wait()
        self.applied += [m[1] for m in batch]
        return [(1, m[1], "linked") for m in batch]


class Client:
    def __init__(self, where: list[Endpoint | None]) -> None:
        self.where = where
        self.asked = 0
        self.over_ray: list[list[WireMutation]] = []
        self.clock = ManualClock()
        self.links = ShardLinks(self.endpoint, self.fallback, clock=self.clock.now)

    async def endpoint(self, shard_id: int) -> Endpoint | None:
        self.asked += 1
        return self.where[0]

    async def fallback(self, shard_id: int, batch: list[WireMutation]) -> list[WireOutcome]:
        self.over_ray.append(batch)
        return [(1, m[1], "ray") for m in batch]

    async def send(self, *rids: str) -> list[str]:
        out = await self.links.send(0, [(0, rid, "SKU-1") for rid in rids])
        return [f"{o[1]}:{o[2]}" for o in out]


async def linked() -> tuple[Shard, Client]:
    shard = Shard()
    where = await shard.server.start("127.0.0.1")
    return shard, Client([where])


async def test_batches_go_over_the_link_and_reuse_its_connection() -> None:
    shard, client = await linked()
    try:
        assert await client.send("a", "b") == ["a:linked", "b:linked"]
        assert await client.send("c") == ["c:linked"]
        assert shard.applied == ["a", "b", "c"] and shard.server.calls == 2
        assert (client.links.linked, client.links.fell_back, client.asked) == (2, 0, 1)
        assert client.over_ray == []
    finally:
        client.links.close()
        shard.server.close()


async def test_batches_in_flight_at_once_each_get_their_own_answers() -> None:
    shard, client = await linked()
    shard.gate = asyncio.Event()
    try:
        first = asyncio.create_task(client.send("a"))
        second = asyncio.create_task(client.send("b", "c"))
        await asyncio.sleep(0.05)
        shard.gate.set()
        assert await first == ["a:linked"]
        assert await second == ["b:linked", "c:linked"]
        assert client.links.linked == 2
    finally:
        client.links.close()
        shard.server.close()


async def test_a_wrong_token_is_refused_and_the_batch_goes_over_ray_once() -> None:
    shard, client = await linked()
    host, port, _ = client.where[0]  # type: ignore[misc]
    client.where[0] = (host, port, b"x" * 32)
    try:
        assert await client.send("a") == ["a:ray"]
        assert shard.applied == [] and len(client.over_ray) == 1
        assert client.links.fell_back == 1
    finally:
        client.links.close()
        shard.server.close()


async def test_a_shard_without_a_link_is_reached_over_ray_and_asked_again_later() -> None:
    client = Client([None])
    assert await client.send("a") == ["a:ray"]
    assert await client.send("b") == ["b:ray"]
    assert client.asked == 1  # not on every batch
    client.clock.advance(RETRY_AFTER_S)
    assert await client.send("c") == ["c:ray"]
    assert client.asked == 2


async def test_after_a_shard_restarts_ray_carries_batches_until_the_new_link_is_found() -> None:
    shard, client = await linked()
    try:
        assert await client.send("a") == ["a:linked"]
        shard.server.close()  # the shard dies: its listener and its connections go
        await asyncio.sleep(0.05)  # the kernel closes the client's side
        restarted = Shard()
        client.where[0] = await restarted.server.start("127.0.0.1")

        assert await client.send("b") == ["b:ray"]  # the old connection is dead
        assert await client.send("c") == ["c:ray"]  # and the link is not asked at once
        client.clock.advance(RETRY_AFTER_S)
        assert await client.send("d") == ["d:linked"]
        assert restarted.applied == ["d"]
        restarted.server.close()
    finally:
        client.links.close()


def raw_connection(where: Endpoint) -> socket.socket:
    host, port, _ = where
    return socket.create_connection((host, port), timeout=5)


async def test_an_oversized_frame_is_refused_before_it_is_read() -> None:
    shard, client = await linked()
    where = client.where[0]
    assert where is not None

    def send_oversized() -> bytes:
        with raw_connection(where) as sock:
            sock.sendall(where[2] + FRAME.pack(MAX_FRAME + 1))
            return sock.recv(16)

    try:
        assert await asyncio.to_thread(send_oversized) == b""  # closed, nothing answered
        assert shard.applied == [] and shard.server.calls == 0
    finally:
        shard.server.close()


async def test_a_connection_that_never_says_the_token_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shard_link, "HELLO_TIMEOUT_S", 0.2)
    shard, client = await linked()
    where = client.where[0]
    assert where is not None

    def stay_silent() -> Any:
        with raw_connection(where) as sock:
            return sock.recv(16)

    try:
        assert await asyncio.to_thread(stay_silent) == b""
        assert shard.applied == []
    finally:
        shard.server.close()


async def test_a_link_port_a_firewall_drops_costs_one_batch_a_second_then_a_minute_of_ray(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cluster whose nodes open only Ray's ports to each other: connecting hangs. The batch
    goes over Ray after CONNECT_TIMEOUT_S, and the link is not tried again for a minute."""
    monkeypatch.setattr(shard_link, "CONNECT_TIMEOUT_S", 0.1)
    tried = 0

    async def dropped(host: str, port: int) -> Any:
        nonlocal tried
        tried += 1
        await asyncio.sleep(3600)

    monkeypatch.setattr(shard_link.asyncio, "open_connection", dropped)
    client = Client([("10.0.0.9", 40000, b"t" * 32)])
    async with asyncio.timeout(5):
        assert await client.send("a") == ["a:ray"]
    client.clock.advance(RETRY_AFTER_S)
    assert await client.send("b") == ["b:ray"]
    assert tried == 1  # not a restart: no retry after a second
    client.clock.advance(BLOCKED_RETRY_S)
    assert await client.send("c") == ["c:ray"]
    assert tried == 2
