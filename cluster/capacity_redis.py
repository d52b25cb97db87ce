"""``measure``'s busy-Redis phase: the shop's Redis commands from many concurrent clients,
for what a command costs Redis when it is busy (``Profile.redis_busy``).

The class phases reach Redis at a few hundred commands/s, each command waking its event
loop alone (docs/capacity.md, 2026-12-03); a match day sends tens of thousands, and one
wakeup then serves many clients. This phase drives the stack's own Redis (or any Redis: it
needs no Ray and no shop) at a few concurrency levels, through the shop's own code (the rate
limiter's lease script, the idempotency store's claim and answer through its pipelining
batch, the catalogue's cache reads and availability hash, the poll tally's vote script),
and reads Redis's CPU (``INFO cpu``, every thread) and its command counter (``INFO stats``,
a script's own calls included, as the class phases count them) at each window's edges.

Everything it writes is under a prefix of its own, deleted afterwards; the votes go to a
stream of that prefix, which no drain reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from matchday.capacity.profile import BusyRedis, RedisLevel
from matchday.catalog.models import ListQuery
from matchday.catalog.service import CatalogService
from matchday.domain.errors import NotFound
from matchday.polls.tally import Tally
from matchday.web.idempotency import IdempotencyStore
from matchday.web.ratelimit import RateLimiter

# Concurrent clients, one connection each: one alone, then enough to share Redis's wakeups.
LEVELS = (1, 8, 64)
LEVEL_S = 3.0
IDLE_S = 1.0
WARM_UP = 2  # requests per client before a window: connections open, scripts loaded
SKUS = 8  # in the phase's availability hash, as a product page asks for its sizes
# Each window's edges read INFO three times (cpu, stats, commandstats): Redis counts them.
OWN_COMMANDS = 3
DELETE_CHUNK = 500
SCRIPTS = ("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro")


class BusyRedisError(RuntimeError):
    """Redis could not be driven busy (no commands counted, or its CPU did not move)."""


class _NoCatalogue:
    """The catalogue's store, never reached: every entry the phase reads is cached (a page
    of no products, a product that does not exist, SKUs in the availability hash)."""

    async def list_products(self, query: ListQuery) -> tuple[list[Any], int]:
        return [], 0

    async def product(self, slug: str) -> None:
        return None

    async def available(self, skus: Sequence[str]) -> dict[str, int]:
        return {}


@dataclass
class Shop:
    """The shop's Redis users, under the phase's own prefix."""

    catalog: CatalogService
    limiter: RateLimiter
    idempotency: IdempotencyStore
    tally: Tally
    skus: list[str]
    poll: str = "busy"

    async def browse(self, fan: str, n: int) -> None:
        await self.catalog.list_products(ListQuery())

    async def product(self, fan: str, n: int) -> None:
        with contextlib.suppress(NotFound):
            await self.catalog.get_product("busy-redis-product")
        await self.catalog.availability(self.skus)

    async def add(self, fan: str, n: int) -> None:
        await self.limiter.check(fan)

        async def produce() -> tuple[int, Any]:
            return 201, {"fan": fan, "n": n}

        await self.idempotency.run("add", f"{fan}-{n}", f"fp-{fan}-{n}", produce)

    async def vote(self, fan: str, n: int) -> None:
        await self.limiter.check(fan)
        await self.tally.vote(self.poll, f"{fan}-{n}", "a", time.time())


def _shop(redis: Redis, prefix: str) -> Shop:
    # A lease of one token: each limited request takes its own trip to Redis, as every
    # request of a fan seen for the first time does in the shop.
    limiter = RateLimiter(redis, per_s=1e9, burst=10**9, prefix=f"{prefix}:rl", lease=1)
    catalog = CatalogService(
        _NoCatalogue(),  # type: ignore[arg-type]
        redis,
        availability_key=f"{prefix}:availability",
        cache_prefix=f"{prefix}:catalog",
    )
    # The key only digests idempotency keys that look like card numbers; ours never do.
    secret = secrets.token_hex(16)
    idem = IdempotencyStore(redis, ttl_s=60.0, secret_key=secret, prefix=f"{prefix}:idem")
    skus = [f"BUSY-REDIS-{i}" for i in range(SKUS)]
    return Shop(catalog, limiter, idem, Tally(redis, prefix=f"{prefix}:poll"), skus)


@dataclass(frozen=True)
class _Reading:
    at: float
    cpu_s: float
    commands: int
    calls: dict[str, tuple[int, int]]  # command -> (calls, usec)


async def _read(redis: Redis) -> _Reading:
    cpu = await redis.info("cpu")
    stats = await redis.info("stats")
    per = await redis.info("commandstats")
    calls = {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in per.items()
        if isinstance(v, dict)
    }
    return _Reading(
        time.monotonic(),
        float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
        int(stats["total_commands_processed"]),
        calls,
    )


def _delta(a: _Reading, b: _Reading) -> dict[str, tuple[int, int]]:
    out = {}
    for name, (calls, usec) in b.calls.items():
        c0, u0 = a.calls.get(name, (0, 0))
        if calls > c0:
            out[name] = (calls - c0, usec - u0)
    return out


def _request(shop: Shop) -> list[Callable[[str, int], Awaitable[None]]]:
    # The kinds in turn: a fan browses, opens a product, adds it and votes.
    return [shop.browse, shop.product, shop.add, shop.vote]


async def _level(
    redis: Redis, shop: Shop, clients: int, seconds: float, idle: tuple[float, float], tag: str
) -> tuple[RedisLevel, dict[str, tuple[int, int]]]:
    kinds = _request(shop)
    done = [0]

    async def client(c: int, until: float | None, count: int) -> None:
        fan = f"{tag}-{clients}-{c}"
        n = 0
        while (until is None and n < count) or (until is not None and time.monotonic() < until):
            await kinds[(c + n) % len(kinds)](fan, n)
            n += 1
            if until is not None:
                done[0] += 1

    await asyncio.gather(*(client(c, None, WARM_UP) for c in range(clients)))
    before = await _read(redis)
    until = time.monotonic() + seconds
    await asyncio.gather(*(client(c, until, 0) for c in range(clients)))
    after = await _read(redis)
    took = after.at - before.at
    idle_cores, idle_cmds = idle
    commands = after.commands - before.commands - OWN_COMMANDS - idle_cmds * took
    cores = (after.cpu_s - before.cpu_s) / took - idle_cores
    if commands <= 0 or cores <= 0:
        raise BusyRedisError(
            f"{clients} clients: Redis counted {commands:.0f} commands on {cores:.4f} cores"
        )
    calls = _delta(before, after)
    calls.pop("info", None)
    # A script's usec holds its own calls' too, which Redis also counts under their names.
    executed = sum(u for name, (_, u) in calls.items() if name not in SCRIPTS)
    level = RedisLevel(
        clients=clients,
        seconds=round(took, 3),
        requests=max(1, done[0]),
        commands=round(commands, 1),
        cmds_per_s=round(commands / took, 1),
        cores=round(cores, 4),
        cpu_us_per_cmd=round(cores * took * 1e6 / commands, 2),
        exec_us_per_cmd=round(executed / commands, 2),
    )
    return level, calls


async def _delete(redis: Redis, prefix: str) -> int:
    gone = 0
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=f"{prefix}:*", count=DELETE_CHUNK):
        batch.append(key)
        if len(batch) >= DELETE_CHUNK:
            gone += await redis.unlink(*batch)
            batch = []
    if batch:
        gone += await redis.unlink(*batch)
    return gone


async def drive(
    redis_url: str,
    levels: Sequence[int] = LEVELS,
    seconds: float = LEVEL_S,
    idle_s: float = IDLE_S,
    say: Callable[[str], None] = lambda _: None,
) -> BusyRedis:
    """Redis at ``redis_url`` driven by ``levels`` concurrent clients in turn, ``seconds``
    each, after an idle window of ``idle_s`` whose burn and command rate every window is
    net of. Its keys (a prefix of its own) are deleted afterwards, also on failure."""
    tag = f"busy{os.getpid()}x{time.time_ns() % 10**9}"
    prefix = f"matchday:capacity:{tag}"
    # One connection per client: redis-py's pool opens one for each concurrent command.
    redis = Redis.from_url(redis_url, max_connections=max(levels) + 8)
    try:
        shop = _shop(redis, prefix)
        await redis.hset(shop.tally.keys(shop.poll)["state"], "status", "open")
        await redis.hset(shop.catalog.availability_key, mapping=dict.fromkeys(shop.skus, 100))
        a = await _read(redis)
        await asyncio.sleep(idle_s)
        b = await _read(redis)
        took = b.at - a.at
        idle_cores = max(0.0, (b.cpu_s - a.cpu_s) / took)
        idle_cmds = max(0.0, (b.commands - a.commands - OWN_COMMANDS) / took)
        say(f"      idle: {idle_cores:.4f} core, {idle_cmds:.1f} commands/s")
        found: list[RedisLevel] = []
        mix: dict[str, int] = {}
        for clients in levels:
            level, calls = await _level(redis, shop, clients, seconds, (idle_cores, idle_cmds), tag)
            found.append(level)
            for name, (n, _) in calls.items():
                mix[name] = mix.get(name, 0) + n
            say(
                f"      {clients} clients: {level.cmds_per_s:,.0f} commands/s on"
                f" {level.cores:.3f} core, {level.cpu_us_per_cmd:.1f} us of Redis CPU a command"
                f" ({level.exec_us_per_cmd:.1f} inside the commands)"
            )
    finally:
        try:
            await _delete(redis, prefix)
        finally:
            await redis.aclose()
    total = sum(mix.values())
    ranked = sorted(mix.items(), key=lambda x: -x[1])
    # Loading the scripts once is not part of the mix.
    shares = {name: round(n / total, 4) for name, n in ranked if round(n / total, 4) > 0}
    return BusyRedis(idle_cores=round(idle_cores, 4), mix=shares, levels=tuple(found))


def measure_busy_redis(
    redis_url: str, seconds: float, say: Callable[[str], None], levels: Sequence[int] = LEVELS
) -> BusyRedis:
    """The phase as ``measure`` runs it, with its progress on ``say``."""
    say(
        f"[redis] the shop's Redis commands from {', '.join(map(str, levels))} concurrent"
        f" clients, {seconds:g} s each ..."
    )
    busy = asyncio.run(drive(redis_url, levels, seconds, say=say))
    say(
        f"      at {busy.busiest.cmds_per_s:,.0f} commands/s: one core of Redis would serve"
        f" ~{busy.ceiling_cmds_per_s:,.0f}/s at that cost"
    )
    return busy
