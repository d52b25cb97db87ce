"""Write-behind: the votes stream drained into PostgreSQL by a consumer group (ADR 0013).

Every polls replica runs one consumer. An entry is acknowledged (and deleted) only after
PostgreSQL stored it; one whose consumer died before acknowledging is claimed by another
after ``claim_idle_ms``. A vote stored twice is inserted once (primary key, ON CONFLICT DO
NOTHING), so redelivery is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from matchday.domain.errors import Unavailable
from matchday.polls.ports import VoteRow, VoteStore
from matchday.tasks import raise_if_cancelled

log = logging.getLogger(__name__)

GROUP = "pg"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_entry(fields: dict[Any, Any]) -> VoteRow | None:
    try:
        f = {_text(k): _text(v) for k, v in fields.items()}
        return (f["p"], f["c"], f["o"], float(f["at"]))
    except (KeyError, ValueError):
        return None


class VoteDrain:
    def __init__(
        self,
        redis: Redis,
        repo: VoteStore,
        stream: str,
        *,
        consumer: str | None = None,
        batch: int = 500,
        claim_idle_ms: int = 30_000,
        linger_s: float = 0.25,
    ) -> None:
        self.redis = redis
        self.repo = repo
        self.stream = stream
        self.consumer = consumer or f"c-{uuid.uuid4().hex[:12]}"
        self.batch = batch
        self.claim_idle_ms = claim_idle_ms
        # After a partial batch, wait this long before reading again: a steady stream of votes
        # is then stored about rate x linger_s per transaction instead of one transaction per
        # vote (measured by bench/polls.py: 1.0 vote per commit at 300 votes/s without it).
        # The votes are already counted in Redis; only their PostgreSQL copy waits.
        self.linger_s = linger_s
        self.stored = 0
        self._grouped = False

    async def _ensure_group(self) -> None:
        if self._grouped:
            return
        try:
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._grouped = True

    async def drain_once(self, block_ms: int = 500, *, again: bool = True) -> int:
        """Store one batch; the number of entries handled (0 if none came within block_ms)."""
        await self._ensure_group()
        try:
            # Entries another consumer took and never acknowledged (it died) come first.
            _, entries, *_ = await self.redis.xautoclaim(
                self.stream, GROUP, self.consumer, self.claim_idle_ms, "0-0", count=self.batch
            )
            if not entries:
                found: Any = await self.redis.xreadgroup(
                    GROUP, self.consumer, {self.stream: ">"}, count=self.batch, block=block_ms
                )
                entries = found[0][1] if found else []
        except ResponseError as exc:
            if "NOGROUP" not in str(exc) or not again:
                raise
            # Redis lost the stream and its group; votes since then are in a new stream,
            # which a group made at "0" reads from its start.
            self._grouped = False
            return await self.drain_once(block_ms, again=False)
        if not entries:
            return 0
        rows = [row for _, fields in entries if (row := parse_entry(fields)) is not None]
        self.stored += await self.repo.store_votes(rows)
        ids = [eid for eid, _ in entries]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, GROUP, *ids)
            pipe.xdel(self.stream, *ids)
            await pipe.execute()
        return len(entries)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Drain until ``stop`` is set or the task is cancelled; outages only pause it."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            raise_if_cancelled()  # a blocking read may have swallowed it (matchday.tasks)
            try:
                handled = await self.drain_once()
            except (Unavailable, RedisError, OSError) as exc:
                log.warning("vote drain paused: %s", exc)
                pause = 1.0
            except Exception:  # a bug must not end the drain silently: log it, go on
                log.exception("vote drain failed; retrying")
                pause = 1.0
            else:
                if not 0 < handled < self.batch or self.linger_s <= 0:
                    continue  # idle (it blocked already), or a full batch: more may wait
                pause = self.linger_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)
