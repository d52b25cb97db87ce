"""Idempotency keys on POST: a retried request gets the first answer, not a second effect.

The first request under a key marks it pending, runs, and stores its status and body; a retry
with the same key and the same request replays that answer; the same key on a different
request is refused (422), and one arriving while the first still runs is told to retry (409).
A server error or a retryable refusal is not remembered, so the retry runs again.

This is the HTTP layer's convenience, not the safety net: the services derive their engine
request ids and order ids from the same key, so even a key whose record Redis lost cannot
reserve or charge twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from matchday.domain.errors import Conflict, InvalidInput, MatchdayError

log = logging.getLogger(__name__)

Produce = Callable[[], Awaitable[tuple[int, Any]]]

# How long a request may run before its key is considered abandoned.
PENDING_TTL_MS = 30_000


def fingerprint(method: str, path: str, body: Any) -> str:
    raw = json.dumps([method, path, body], sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


class IdempotencyStore:
    def __init__(self, redis: Redis, *, ttl_s: float, prefix: str = "matchday:idem") -> None:
        self.redis = redis
        self.ttl_ms = int(ttl_s * 1000)
        self.prefix = prefix

    async def run(self, scope: str, key: str, fp: str, produce: Produce) -> tuple[int, Any, bool]:
        """(status, body, replayed)."""
        k = f"{self.prefix}:{scope}:{key}"
        try:
            claimed = await self.redis.set(
                k, json.dumps({"state": "pending", "fp": fp}), nx=True, px=PENDING_TTL_MS
            )
            if not claimed:
                seen = await self.redis.get(k)
                if seen is not None:
                    return self._replay(json.loads(seen), fp)
                claimed = True  # expired in between: run it
        except (RedisError, OSError) as exc:
            log.warning("idempotency store unavailable; relying on engine ids: %s", exc)
            status, body = await produce()
            return status, body, False
        try:
            status, body = await produce()
        except MatchdayError as exc:
            if exc.retryable:
                await self._forget(k)
            else:
                await self._store(k, fp, exc.http_status, {"__error__": [exc.code, exc.message]})
            raise
        except BaseException:
            await self._forget(k)
            raise
        await self._store(k, fp, status, body)
        return status, body, False

    @staticmethod
    def _replay(record: dict[str, Any], fp: str) -> tuple[int, Any, bool]:
        if record.get("fp") != fp:
            raise InvalidInput("Idempotency-Key", "already used for a different request")
        if record["state"] == "pending":
            raise Conflict("a request with this Idempotency-Key is still running; retry shortly")
        return int(record["status"]), record["body"], True

    async def _store(self, k: str, fp: str, status: int, body: Any) -> None:
        record = {"state": "done", "fp": fp, "status": status, "body": body}
        try:
            await self.redis.set(k, json.dumps(record, default=str), px=self.ttl_ms)
        except (RedisError, OSError) as exc:
            log.warning("idempotency record for %s not stored: %s", k, exc)

    async def _forget(self, k: str) -> None:
        try:
            await self.redis.delete(k)
        except (RedisError, OSError) as exc:
            log.warning("idempotency record for %s not cleared: %s", k, exc)
