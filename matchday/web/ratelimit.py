"""Per-client rate limits: one token bucket per client in Redis, spent through local leases.

The bucket lives in Redis, not in a replica, so a client spread over many replicas still gets
one budget. Redis's own clock (``TIME``) refills it, so replicas' clocks need not agree.

A replica does not ask Redis on every request: it takes a **lease** of up to ``lease`` tokens
from the client's bucket in one round trip and spends them locally, for at most ``lease_s``
(60 s); what is left then is dropped (it was already taken from the bucket). A lease holds at
most what the client earns in half a second (``LEASE_EARN_S``), so its size bounds what it can
add to a window; its life only decides how often a slow client pays a trip. A shopper adding
every few seconds pays one EVALSHA per ``lease`` adds (10 with the defaults), not one per add
as with the 0.5 s leases before (2026-12-02: 0.28 trips per add in ``bench.http``, and one per
add for any client adding less than twice a second). A refusal is remembered locally until
the bucket would have refilled, so a client hammering while refused costs no trips either.

Tolerance, stated and tested (tests/integration/test_ratelimit_leases.py): the bucket is
never overdrawn, and a replica holds at most one lease per client, of which it has already
spent a token; so over any window of ``t`` seconds a client served by ``R`` replicas is
admitted at most ``burst + per_s * t + R * (lease - 1)`` requests (the bucket's worth, its
refill, and each replica's lease drawn before the window). It is refused early by at most
the unspent leases of the other replicas it used, ``(R - 1) * (lease - 1)`` tokens, for at
most ``lease_s``. With the defaults (20/s, burst 40) a lease is 10 tokens: one replica adds
at most 9 to a window (the 0.5 s leases allowed ``per_s * 0.5`` = 10), eight at most 72.
Unspent tokens are not handed back when a lease runs out: that happens only after 60 s in
which its replica saw the client too seldom to spend them, thirty times the bucket's refill
(``burst / per_s``, 2 s), so giving them back would cost a trip to top up a bucket that is
nearly always full by then.

When Redis is down the limiter lets requests through: refusing every shopper because the
limiter's store is away would turn a Redis outage into a shop outage.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from matchday.domain.errors import RateLimited

log = logging.getLogger(__name__)

# Grants min(want, whole tokens available) when that covers ``cost``; else nothing, and how
# long until ``cost`` tokens are there.
_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
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
local grant = math.min(want, math.floor(tokens))
local wait = 0
if grant >= cost then
  tokens = tokens - grant
else
  grant = 0
  wait = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {grant, wait}
"""

LEASE_S = 60.0
LEASE_EARN_S = 0.5
# A lease never holds more than this, nor more than half a burst, nor more than the client
# earns in LEASE_EARN_S: at 20/s that is 10 tokens, one Redis trip per 10 requests; at 2/s
# (votes) it is 1, a trip per request as before.
MAX_LEASE = 64
MAX_CLIENTS = 100_000  # local entries kept per process; the oldest go first


class _Local:
    __slots__ = ("expires", "refused_until", "tokens")

    def __init__(self, tokens: int, expires: float, refused_until: float) -> None:
        self.tokens = tokens
        self.expires = expires
        self.refused_until = refused_until


class RateLimiter:
    def __init__(
        self,
        redis: Redis,
        *,
        per_s: float,
        burst: int,
        prefix: str = "matchday:rl",
        lease: int | None = None,
        lease_s: float = LEASE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.per_s = per_s
        self.burst = burst
        self.prefix = prefix
        self.lease_s = lease_s
        self.lease = lease or max(1, min(MAX_LEASE, burst // 2, int(per_s * LEASE_EARN_S)))
        self.clock = clock
        self._local: dict[str, _Local] = {}
        self._script: Any = redis.register_script(_BUCKET)

    async def check(self, client: str, cost: int = 1) -> None:
        """Take ``cost`` tokens from ``client``'s bucket, or raise :class:`RateLimited`."""
        now = self.clock()
        held = self._local.get(client)
        if held is not None:
            if held.refused_until > now:
                raise RateLimited(max(1.0, held.refused_until - now))
            if held.expires > now and held.tokens >= cost:
                held.tokens -= cost
                return
        try:
            granted, wait_ms = await self._script(
                keys=[f"{self.prefix}:{client}"],
                args=[self.per_s, self.burst, max(cost, self.lease), cost],
            )
        except (RedisError, OSError) as exc:
            log.warning("rate limiter unavailable, letting %s through: %s", client, exc)
            return
        granted, wait_s = int(granted), int(wait_ms) / 1000
        now = self.clock()
        if granted >= cost:
            self._remember(client, _Local(granted - cost, now + self.lease_s, 0.0))
            return
        self._remember(client, _Local(0, 0.0, now + wait_s))
        raise RateLimited(max(1.0, math.ceil(wait_s)))

    def _remember(self, client: str, entry: _Local) -> None:
        local = self._local
        local.pop(client, None)
        if len(local) >= MAX_CLIENTS:
            local.pop(next(iter(local)))
        local[client] = entry
