"""The queue of each drop in Redis: one Lua script per step that reads and writes.

Keys per drop, hash-tagged on the drop id (one Redis Cluster slot), expiring two days after
the last write:

    matchday:wr:{<drop>}:waiting    sorted set  customer -> place
    matchday:wr:{<drop>}:tickets    hash        customer -> place (one ticket per shopper)
    matchday:wr:{<drop>}:admitted   hash        customer -> admitted at (ms)
    matchday:wr:{<drop>}:pending    sorted set  admitted, no hold yet -> pass expiry (ms)
    matchday:wr:{<drop>}:meta       hash        credit, last (ms), refused, behind
    matchday:wr:{<drop>}:a:<addr>   set         customers who joined from that address

and, for automatic drops (auto.py), every replica's adds per SKU per time bucket:

    matchday:wr:demand:<bucket>     hash        SKU -> adds, expiring after the hold-down

Places are integers below 2**53, exact as sorted-set scores and passed as strings. Any Redis
failure is a retryable :class:`Unavailable` (503 with Retry-After).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from matchday.domain.errors import Unavailable
from matchday.waitingroom.models import Located

T = TypeVar("T")
KEY_TTL_S = 2 * 24 * 3600

_FILE = """
local have = redis.call('HGET', KEYS[1], ARGV[1])
if have then return have end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return ARGV[2]
"""

_COUNT_ADDRESS = """
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return redis.call('SCARD', KEYS[1])
"""

# Admit what the credit and the headroom allow, then locate ARGV[1]: the same arithmetic as
# tests/unit/waitingroom_fakes.FakeQueue.advance.
_ADVANCE = """
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local m = redis.call('HMGET', KEYS[4], 'credit', 'last')
local credit = tonumber(m[1]) or 0
local last = tonumber(m[2]) or now
local places = {}
if ARGV[3] == '1' then
  local rate = tonumber(ARGV[4])
  credit = math.min(math.max(1, rate), credit + math.max(0, now - last) * rate / 1000)
  local room = tonumber(ARGV[5]) - redis.call('ZCARD', KEYS[3])
  local n = math.min(math.floor(credit), room)
  if n > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[1], n)
    local expires = now + tonumber(ARGV[6])
    for i = 1, #popped, 2 do
      redis.call('HSET', KEYS[2], popped[i], now)
      redis.call('ZADD', KEYS[3], expires, popped[i])
      places[#places + 1] = popped[i + 1]
      credit = credit - 1
    end
  end
end
redis.call('HSET', KEYS[4], 'credit', tostring(credit), 'last', math.max(last, now))
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[7]) end
local waiting = redis.call('ZCARD', KEYS[1])
local at = redis.call('HGET', KEYS[2], ARGV[1])
if at then return {1, 0, at, waiting, places} end
local rank = redis.call('ZRANK', KEYS[1], ARGV[1])
if rank then return {2, rank, '0', waiting, places} end
return {0, 0, '0', waiting, places}
"""

_KINDS = {0: "unknown", 1: "admitted", 2: "waiting"}


class RedisQueue:
    def __init__(self, redis: Redis, prefix: str = "matchday:wr") -> None:
        self.redis = redis
        self.prefix = prefix
        self._file: Any = redis.register_script(_FILE)
        self._count: Any = redis.register_script(_COUNT_ADDRESS)
        self._advance: Any = redis.register_script(_ADVANCE)

    def key(self, drop_id: str, name: str) -> str:
        return f"{self.prefix}:{{{drop_id}}}:{name}"

    async def ticket_of(self, drop_id: str, customer: str) -> int | None:
        place = await _guard(self.redis.hget(self.key(drop_id, "tickets"), customer))
        return None if place is None else int(place)

    async def count_address(self, drop_id: str, address: str, customer: str) -> int:
        keys = [self.key(drop_id, f"a:{address}")]
        return int(await _guard(self._count(keys=keys, args=[customer, KEY_TTL_S])))

    async def file(self, drop_id: str, customer: str, place: int) -> int:
        keys = [self.key(drop_id, n) for n in ("tickets", "waiting", "admitted")]
        return int(await _guard(self._file(keys=keys, args=[customer, str(place), KEY_TTL_S])))

    async def bump(self, drop_id: str, counter: str) -> None:
        await _guard(self.redis.hincrby(self.key(drop_id, "meta"), counter, 1))

    async def advance(
        self,
        drop_id: str,
        customer: str,
        now: float,
        *,
        admit: bool,
        rate_per_s: float,
        available: int,
        pass_ttl_s: float,
    ) -> Located:
        keys = [self.key(drop_id, n) for n in ("waiting", "admitted", "pending", "meta")]
        args = [
            customer,
            int(now * 1000),
            "1" if admit else "0",
            rate_per_s,
            available,
            int(pass_ttl_s * 1000),
            KEY_TTL_S,
        ]
        kind, rank, at, waiting, places = await _guard(self._advance(keys=keys, args=args))
        admitted = tuple(int(float(p)) for p in places)  # ZPOPMIN scores come back as text
        return Located(_KINDS[int(kind)], int(rank), int(at) / 1000, int(waiting), admitted)

    async def spent(self, drop_id: str, customer: str) -> None:
        await _guard(self.redis.zrem(self.key(drop_id, "pending"), customer))

    async def stats(self, drop_id: str, now: float) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(self.key(drop_id, "waiting"))
        pipe.hlen(self.key(drop_id, "admitted"))
        pipe.zcount(self.key(drop_id, "pending"), f"({int(now * 1000)}", "+inf")
        pipe.hlen(self.key(drop_id, "tickets"))
        pipe.hmget(self.key(drop_id, "meta"), "refused", "behind")
        waiting, admitted, pending, tickets, (refused, behind) = await _guard(pipe.execute())
        return {
            "waiting": int(waiting),
            "admitted": int(admitted),
            "pending": int(pending),
            "tickets": int(tickets),
            "refused": int(refused or 0),
            "behind": int(behind or 0),
        }


class RedisDemand:
    """Adds per SKU summed over the replicas: one HINCRBY per SKU a replica saw, pipelined,
    once per bucket per replica (never per add)."""

    def __init__(self, redis: Redis, prefix: str = "matchday:wr:demand") -> None:
        self.redis = redis
        self.prefix = prefix

    async def record(self, counts: Mapping[str, int], bucket: int, ttl_s: float) -> None:
        if not counts:
            return
        key = f"{self.prefix}:{bucket}"
        pipe = self.redis.pipeline(transaction=False)
        for sku, n in counts.items():
            pipe.hincrby(key, sku, n)
        pipe.expire(key, max(1, int(ttl_s)))
        await _guard(pipe.execute())

    async def totals(self, buckets: Sequence[int]) -> list[dict[str, int]]:
        pipe = self.redis.pipeline(transaction=False)
        for bucket in buckets:
            pipe.hgetall(f"{self.prefix}:{bucket}")
        found = await _guard(pipe.execute())
        return [{_text(k): int(v) for k, v in h.items()} for h in found]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _guard(call: Awaitable[T]) -> T:
    try:
        return await call
    except (RedisError, OSError) as exc:
        raise Unavailable("the waiting room's queue is not answering") from exc
