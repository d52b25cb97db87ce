"""Order status changes pushed to Redis, for clients following an order live.

Postgres (``order_events``) is the record; the Redis stream per order is only the push
channel, so a publish that fails is logged and the follower catches up from Postgres.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# A stream per order lives a day: long enough for any client still watching its order.
STREAM_TTL_S = 86_400
STREAM_MAXLEN = 100


class RedisOrderEvents:
    def __init__(self, redis: Redis, prefix: str = "matchday:order") -> None:
        self.redis = redis
        self.prefix = prefix

    def key(self, order_id: str) -> str:
        return f"{self.prefix}:{order_id}"

    async def publish(self, order_id: str, status: str, detail: dict[str, Any]) -> None:
        key = self.key(order_id)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xadd(
                    key,
                    {"status": status, "detail": json.dumps(detail), "at": f"{time.time():.3f}"},
                    maxlen=STREAM_MAXLEN,
                    approximate=True,
                )
                pipe.expire(key, STREAM_TTL_S)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("order %s: status %s not pushed: %s", order_id, status, exc)

    async def last_id(self, order_id: str) -> str:
        """The newest event's stream id, or "0": where a follower starts listening."""
        newest: Any = await self.redis.xrevrange(self.key(order_id), count=1)
        if not newest:
            return "0"
        eid = newest[0][0]
        return str(eid.decode() if isinstance(eid, bytes) else eid)

    async def wait(self, order_id: str, last_id: str, block_ms: int) -> list[tuple[str, str]]:
        """(stream id, status) of the events after ``last_id``; [] when none came in time."""
        answer: Any = await self.redis.xread(
            {self.key(order_id): last_id}, block=block_ms, count=50
        )
        out: list[tuple[str, str]] = []
        for _, entries in answer or []:
            for entry_id, fields in entries:
                eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                status = fields.get(b"status", fields.get("status", b""))
                out.append((eid, status.decode() if isinstance(status, bytes) else status))
        return out
