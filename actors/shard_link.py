"""A direct link to each shard for its batches; Ray keeps placing, restarting and fencing it.

Measured on this 2-core VM (2026-12-03, one 32-mutation batch echoed, ADR 0031): a Ray
async actor call cost 1.0-2.0 ms of CPU in the caller and as much in the actor; the same
batch over a Unix socket 50-90 us a side. At 64 callers a shard spent ~5.6 ms of CPU per
batch, so Ray's hop was about a third of it, and as much again in every caller.

- **The shard listens** on the address Ray gave its node (loopback on a one-machine stack),
  on a port the kernel picks, and answers ``link()`` over Ray with (host, port, token). The
  token is random per incarnation, so only a process that could already call the actor over
  Ray (authenticated by Ray's token) can open a link, and a restarted shard's old links fail.
- **A connection carries one batch at a time**: a request is the token once, then frames of
  (length, pickled batch); each is answered by a frame of pickled outcomes. A client keeps up
  to ``in_flight`` connections per shard, so no background task reads for it.
- **Anything odd falls back to Ray** for that batch: no link yet, a refused or reset
  connection, a shard that died mid-batch. Ray's call waits for the restart and is retried
  by Ray, as before; a batch sent on both paths is applied once (its request ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import pickle
import secrets
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

from matchday.inventory.wire import WireMutation, WireOutcome

log = logging.getLogger(__name__)

TOKEN_BYTES = 32
FRAME = struct.Struct("!I")
# A batch is at most max_batch (2,048 by default) mutations of a few short fields: 64 MiB is
# far past any real one and still refuses a length that would exhaust memory.
MAX_FRAME = 64 << 20
HELLO_TIMEOUT_S = 5.0
# After a shard said it has no link, or a link failed, Ray carries its batches this long
# before the link is asked for again: a restart is not retried on every batch.
RETRY_AFTER_S = 1.0
# A connection not accepted within this is taken for a firewall dropping the link's port (on
# a cluster whose nodes open only Ray's own ports to each other): Ray carries that shard's
# batches for BLOCKED_RETRY_S before the next try, so one batch a minute waits a second.
CONNECT_TIMEOUT_S = 1.0
BLOCKED_RETRY_S = 60.0

Apply = Callable[[list[WireMutation]], Awaitable[list[WireOutcome]]]
Endpoint = tuple[str, int, bytes]


class LinkServer:
    """The shard's side: authenticates each connection, then applies its batches in order."""

    def __init__(self, apply: Apply) -> None:
        self.apply = apply
        self.token = secrets.token_bytes(TOKEN_BYTES)
        self.calls = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str) -> Endpoint:
        self._server = await asyncio.start_server(self._serve, host, 0)
        port = self._server.sockets[0].getsockname()[1]
        return host, int(port), self.token

    def close(self) -> None:
        """Stop listening and drop every connection, as the shard's process ending does."""
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            hello = await asyncio.wait_for(reader.readexactly(TOKEN_BYTES), HELLO_TIMEOUT_S)
            if not hmac.compare_digest(hello, self.token):
                return
            while True:
                (size,) = FRAME.unpack(await reader.readexactly(FRAME.size))
                if size > MAX_FRAME:
                    return
                batch = pickle.loads(await reader.readexactly(size))  # noqa: S301 - authenticated peer
                self.calls += 1
                body = pickle.dumps(await self.apply(batch), protocol=pickle.HIGHEST_PROTOCOL)
                writer.write(FRAME.pack(len(body)) + body)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass  # the client went away, or never said the token: nothing was half-applied
        except Exception as exc:  # the client falls back to Ray, which raises it there
            log.warning("shard link: closing a connection after %r", exc)
        finally:
            self._writers.discard(writer)
            writer.close()


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def call(self, batch: list[WireMutation]) -> list[WireOutcome]:
        body = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        self.writer.write(FRAME.pack(len(body)) + body)
        (size,) = FRAME.unpack(await self.reader.readexactly(FRAME.size))
        if size > MAX_FRAME:
            raise ConnectionError("shard link: oversized answer")
        out: list[WireOutcome] = pickle.loads(await self.reader.readexactly(size))  # noqa: S301
        return out

    def close(self) -> None:
        self.writer.close()


class ShardLinks:
    """The client's side: ``send(shard_id, batch)`` over a link, else over Ray.

    ``endpoint(shard_id)`` asks the shard (over Ray) where its link is, or None;
    ``fallback(shard_id, batch)`` is the Ray call. Connections belong to the event loop that
    opened them; on another loop they are opened afresh.
    """

    def __init__(
        self,
        endpoint: Callable[[int], Awaitable[Endpoint | None]],
        fallback: Callable[[int, list[WireMutation]], Awaitable[list[WireOutcome]]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._endpoint = endpoint
        self._fallback = fallback
        self._clock = clock
        self._where: dict[int, Endpoint] = {}
        self._idle: dict[int, list[_Conn]] = {}
        self._not_before: dict[int, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.linked = 0  # batches answered over a link (tests and benchmarks read it)
        self.fell_back = 0

    async def send(self, shard_id: int, batch: list[WireMutation]) -> list[WireOutcome]:
        conn = await self._conn(shard_id)
        if conn is None:
            self.fell_back += 1
            return await self._fallback(shard_id, batch)
        try:
            out = await conn.call(batch)
        except (OSError, EOFError, asyncio.IncompleteReadError, pickle.UnpicklingError) as exc:
            conn.close()
            self._forget(shard_id, exc)
            self.fell_back += 1
            return await self._fallback(shard_id, batch)
        except BaseException:  # cancelled mid-call: the answer may still come, on no one's read
            conn.close()
            raise
        self._idle.setdefault(shard_id, []).append(conn)
        self.linked += 1
        return out

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    async def _conn(self, shard_id: int) -> _Conn | None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._idle.clear()  # another loop's sockets; that loop closes them
            self._loop = loop
        idle = self._idle.get(shard_id)
        if idle:
            return idle.pop()
        if self._clock() < self._not_before.get(shard_id, 0.0):
            return None
        try:
            where = self._where.get(shard_id) or await self._endpoint(shard_id)
            if where is None:
                self._not_before[shard_id] = self._clock() + RETRY_AFTER_S
                return None
            host, port, token = where
            connect = asyncio.open_connection(host, port)
            reader, writer = await asyncio.wait_for(connect, CONNECT_TIMEOUT_S)
            writer.write(token)
        except TimeoutError as exc:
            self._forget(shard_id, exc, BLOCKED_RETRY_S)
            return None
        except OSError as exc:
            self._forget(shard_id, exc)
            return None
        self._where[shard_id] = where
        return _Conn(reader, writer)

    def _forget(self, shard_id: int, exc: BaseException, wait_s: float = RETRY_AFTER_S) -> None:
        """The link failed (a shard restarting, most likely): Ray carries the batch, and the
        shard is asked for its link again ``wait_s`` later."""
        log.info("shard %s link failed (%r); over Ray for %.0f s", shard_id, exc, wait_s)
        self._where.pop(shard_id, None)
        for conn in self._idle.pop(shard_id, []):
            conn.close()
        self._not_before[shard_id] = self._clock() + wait_s


def endpoint_of(handles: dict[int, Any]) -> Callable[[int], Awaitable[Endpoint | None]]:
    async def endpoint(shard_id: int) -> Endpoint | None:
        with contextlib.suppress(Exception):  # an old shard without link(), or one restarting
            where: Endpoint | None = await handles[shard_id].link.remote()
            return where
        return None

    return endpoint
