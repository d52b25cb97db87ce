"""Per-client rate limits: a token bucket per client in Redis, one round trip per request.

The bucket lives in Redis, not in a replica, so a client spread over many replicas still gets
one budget. Redis's own clock (``TIME``) is used, so replicas' clocks need not agree. When
Redis is down the limiter lets requests through: refusing every shopper because the limiter's
store is away would turn a Redis outage into a shop outage.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from matchday.domain.errors import RateLimited

log = logging.getLogger(__name__)

_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local wait = 0
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait}
"""


class RateLimiter:
    def __init__(
        self, redis: Redis, *, per_s: float, burst: int, prefix: str = "matchday:rl"
    ) -> None:
        self.redis = redis
        self.per_s = per_s
        self.burst = burst
        self.prefix = prefix
        self._script: Any = redis.register_script(_BUCKET)

    async def check(self, client: str, cost: int = 1) -> None:
        """Take ``cost`` tokens from ``client``'s bucket, or raise :class:`RateLimited`."""
        try:
            allowed, wait_ms = await self._script(
                keys=[f"{self.prefix}:{client}"], args=[self.per_s, self.burst, cost]
            )
        except (RedisError, OSError) as exc:
            log.warning("rate limiter unavailable, letting %s through: %s", client, exc)
            return
        if not int(allowed):
            raise RateLimited(max(1.0, int(wait_ms) / 1000))
