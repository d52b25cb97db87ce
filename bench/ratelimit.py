"""The rate limiter's CPU per request for ordinary shoppers, with 0.5 s leases and with 60 s.

Usage::

    python -m bench.ratelimit                   # 2,000 shoppers, 20 adds each, 2 s apart
    python -m bench.ratelimit --shoppers 500 --adds 40 --gap-s 5

Each shopper adds every ``--gap-s`` seconds of a simulated clock (the limiter's ``clock``;
Redis refills the bucket on its own clock, so no bucket runs dry). Printed per lease life:
Redis trips (EVALSHA) per request and this process's CPU microseconds per ``check``, against
an embedded Redis started here (its own CPU not counted). The limit is the shop's default,
20/s with a burst of 40 (a lease of 10 tokens).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

from matchday.embedded import remove_tree, start_servers
from matchday.web.ratelimit import LEASE_S, RateLimiter


async def measure(redis: Redis, lease_s: float, args: argparse.Namespace) -> None:
    now = [0.0]
    limiter = RateLimiter(
        redis, per_s=20.0, burst=40, prefix=f"bench:rl:{lease_s}", lease_s=lease_s,
        clock=lambda: now[0],
    )  # fmt: skip
    before = (await redis.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
    cpu = time.process_time()
    for _ in range(args.adds):
        for n in range(args.shoppers):
            await limiter.check(f"c:{n}")
        now[0] += args.gap_s
    cpu = time.process_time() - cpu
    after = (await redis.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
    requests = args.adds * args.shoppers
    print(
        f"lease life {lease_s:5.1f} s: {(after - before) / requests:.2f} Redis trips per request,"
        f" {cpu / requests * 1e6:6.1f} us CPU per check",
        flush=True,
    )


async def main_async(redis_url: str, args: argparse.Namespace) -> None:
    redis = Redis.from_url(redis_url)
    try:
        for lease_s in (0.5, LEASE_S):
            await measure(redis, lease_s, args)
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shoppers", type=int, default=2_000)
    parser.add_argument("--adds", type=int, default=20)
    parser.add_argument("--gap-s", type=float, default=2.0)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="matchday-rl-"))
    _, redis_url, started = start_servers("-", "", data_dir)
    try:
        asyncio.run(main_async(redis_url, args))
    finally:
        for server in reversed(started):
            server.stop()
        remove_tree(data_dir)


if __name__ == "__main__":
    main()
