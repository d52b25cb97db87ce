"""Idempotency keys on POST: a retried request gets the first answer, not a second effect.

The first request under a key marks it pending, runs, and stores its status and body; a retry
with the same key and the same request replays that answer; the same key on a different
request is refused (422), and one arriving while the first still runs is told to retry (409).
A server error or a retryable refusal is not remembered, so the retry runs again.

Round trips: a fresh key costs two (the claim, then the answer), a replay one. The claim is a
script that sets the pending mark or returns what the key already holds, in one trip (it was
SET NX then GET: two trips on every replay and conflict). Neither of the two can go: the
claim is what refuses a reused key before its request has any effect, and the answer is what
a retry replays. A request without a key costs none. Concurrent requests' commands go to
Redis together, one pipeline per event-loop turn (redis_batch.py).

This is the HTTP layer's convenience, not the safety net: the services derive their engine
request ids and order ids from the same key, so even a key whose record Redis lost cannot
reserve or charge twice.

A key is an opaque client identifier, so it is not screened for card numbers (a 32-hex key
has a Luhn-valid 13-digit run one time in 500). Instead a key that carries such a run is
replaced by its keyed digest (:meth:`IdempotencyStore.usable`) before anything stores or
derives from it; every other key is used as sent (docs/threat-model.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from matchday.domain.cards import carries_pan
from matchday.domain.errors import Conflict, InvalidInput, MatchdayError
from matchday.web.redis_batch import RedisBatch

log = logging.getLogger(__name__)

Produce = Callable[[], Awaitable[tuple[int, Any]]]

# How long a request may run before its key is considered abandoned.
PENDING_TTL_MS = 30_000
_KEY_LABEL = b"matchday idempotency key v1"
# Set the pending mark, or return what the key holds: one round trip either way.
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
"""
_CLAIM_SHA = hashlib.sha1(_CLAIM.encode()).hexdigest()  # noqa: S324 - Redis's script id


def fingerprint(method: str, path: str, body: Any) -> str:
    raw = json.dumps([method, path, body], sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


class IdempotencyStore:
    def __init__(
        self, redis: Redis, *, ttl_s: float, secret_key: str, prefix: str = "matchday:idem"
    ) -> None:
        self.redis = redis
        self.ttl_ms = int(ttl_s * 1000)
        self.prefix = prefix
        # Domain separation from the shopper tokens and admin sessions signed with the same key.
        self._key = hmac.new(secret_key.encode(), _KEY_LABEL, hashlib.sha256).digest()
        self.batch = RedisBatch(redis)  # concurrent requests' commands share round trips

    def usable(self, key: str) -> str:
        """``key`` itself, or its keyed digest when it carries a card-number-like run.

        Keyed (HMAC), not a bare hash: a card number has too few unknown digits for an
        unkeyed hash to hide it. Base32: the digest itself never has a long digit run."""
        if not carries_pan(key):
            return key
        mac = hmac.new(self._key, key.encode(), hashlib.sha256).digest()[:15]
        return "kd_" + base64.b32encode(mac).decode().lower()

    async def run(self, scope: str, key: str, fp: str, produce: Produce) -> tuple[int, Any, bool]:
        """(status, body, replayed); ``key`` must already be :meth:`usable`."""
        k = f"{self.prefix}:{scope}:{key}"
        try:
            seen = await self._claim(k, json.dumps({"state": "pending", "fp": fp}))
        except (RedisError, OSError) as exc:
            log.warning("idempotency store unavailable; relying on engine ids: %s", exc)
            status, body = await produce()
            return status, body, False
        if seen is not None:
            return self._replay(json.loads(seen), fp)
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

    async def _claim(self, k: str, pending: str) -> bytes | None:
        try:
            found: bytes | None = await self.batch.execute(
                "EVALSHA", _CLAIM_SHA, 1, k, pending, PENDING_TTL_MS
            )
        except NoScriptError:  # a restarted Redis: EVAL caches the script again
            found = await self.batch.execute("EVAL", _CLAIM, 1, k, pending, PENDING_TTL_MS)
        return found

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
            await self.batch.execute("SET", k, json.dumps(record, default=str), "PX", self.ttl_ms)
        except (RedisError, OSError) as exc:
            log.warning("idempotency record for %s not stored: %s", k, exc)

    async def _forget(self, k: str) -> None:
        try:
            await self.batch.execute("DEL", k)
        except (RedisError, OSError) as exc:
            log.warning("idempotency record for %s not cleared: %s", k, exc)
