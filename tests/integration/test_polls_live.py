"""A results stream whose client went away stops its live-results loop by itself.

Over real HTTP (uvicorn on loopback, the same ASGI app a Serve replica runs) on the real
embedded Redis and PostgreSQL: shoppers open streams, then drop their connections without a
word; the process's loop for that poll ends within a bound, with nothing logged.
tests/e2e/test_polls_live_serve.py checks the same through the Serve stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from matchday.settings import Settings
from matchday.web import polls_api
from matchday.web.context import ShopContext
from tests.integration.test_polls_api import Polls, open_polls
from tests.logs import messages_of

pytestmark = pytest.mark.integration

# Starlette notices a closed connection at once (it listens for http.disconnect), and the
# loop then stops at its next turn: at most one Redis wait (0.8 s) later. Generous on purpose.
ENDS_WITHIN_S = 10.0
STREAMS = 3


@contextlib.asynccontextmanager
async def served(ctx: ShopContext) -> AsyncIterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(
        polls_api.build(ctx), host="127.0.0.1", port=port, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def first_event(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """An open stream, read up to its first results event (the loop is running then)."""
    request = client.build_request("GET", url)
    response = await client.send(request, stream=True)
    assert response.status_code == 200
    async for line in response.aiter_lines():
        if line.startswith("event: results"):
            return response
    raise AssertionError("the stream ended before its first event")


@pytest.fixture
async def polls(settings: Settings) -> AsyncIterator[Polls]:
    async with open_polls(settings) as p:
        yield p


async def test_dropped_streams_end_their_live_loop_within_a_bound(
    polls: Polls, caplog: pytest.LogCaptureFixture
) -> None:
    pid = (await polls.create())["poll_id"]
    hub = polls.service.live
    with caplog.at_level(logging.DEBUG, logger="matchday"):
        async with served(polls.admin.stack.ctx) as base:
            clients = [httpx.AsyncClient(base_url=base, timeout=10) for _ in range(STREAMS)]
            streams = [await first_event(c, f"/{pid}/events") for c in clients]
            loops = hub.loops()
            assert len(loops) == 1  # one loop for the poll, however many watch it
            # The shoppers close their tabs: the TCP connections go, no request says so.
            for stream, client in zip(streams, clients, strict=True):
                await stream.aclose()
                await client.aclose()
            done, _ = await asyncio.wait(loops, timeout=ENDS_WITHIN_S)
            assert done == set(loops) and hub.loops() == []
    assert messages_of(caplog, "matchday.polls") == []
    assert messages_of(caplog, "matchday.web") == []
