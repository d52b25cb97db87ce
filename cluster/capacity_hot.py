"""``measure``'s last phase: many callers reserve one hot SKU through Ray, for the ceiling of
the one shard that owns it (``Profile.hot_shard``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from cluster.capacity_probe import Fixture
from cluster.capacity_run import MeasureError, Run, say
from matchday.capacity import classes as k
from matchday.capacity.costs import Window, class_cost
from matchday.capacity.profile import HotShard

HOT_TTL_S = 30.0  # the hot phase's holds expire by themselves after the measurement


def measure_hot_shard(run: Run, fixture: Fixture, callers: int) -> HotShard:
    """Many callers reserving one SKU through Ray: the ceiling of the shard that owns it."""
    from cluster.cli_common import with_ray

    assert run.idle is not None
    say(f"[hot] {callers} callers reserve {fixture.hot} through Ray for {run.phase_s:g} s ...")

    async def work(ctx: Any) -> tuple[int, Window]:
        client, _ = ctx
        tag = fixture.run.lower()
        await client.reserve(f"cap-{tag}-warm", fixture.hot, 1, f"cap-{tag}", f"cap-{tag}",
                             HOT_TTL_S)  # fmt: skip
        done = [0]
        deadline = time.monotonic() + run.phase_s

        async def caller(c: int) -> None:
            n = 0
            while time.monotonic() < deadline:
                n += 1
                await client.reserve(f"cap-{tag}-{c}-{n}", fixture.hot, 1, f"cap-{tag}-{c}",
                                     f"cap-{tag}-{c}", HOT_TTL_S)  # fmt: skip
                done[0] += 1

        before = run.meter.read()
        await asyncio.gather(*(caller(c) for c in range(callers)))
        await asyncio.sleep(run.tail_s)
        return done[0], run.meter.window(before, run.meter.read())

    reserves, w = with_ray(run.target.settings, work)
    if reserves == 0:
        raise MeasureError("the hot shard phase reserved nothing")
    cost = class_cost(w, run.idle, ok=reserves, errors=0, rate_per_s=reserves / run.phase_s,
                      latencies_ms=[])  # fmt: skip
    shard_us = cost.cpu_us.get(k.SHARDS, 0.0)
    if shard_us <= 0:
        raise MeasureError("the shards' CPU did not move in the hot phase: are they local?")
    hot = HotShard(callers=callers, reserves=reserves, seconds=run.phase_s,
                   reserves_per_s=reserves / run.phase_s, shard_cpu_us=shard_us,
                   pg_write_xacts=cost.pg_write_xacts, pg_wal_bytes=cost.pg_wal_bytes,
                   cpu_us=cost.cpu_us)  # fmt: skip
    say(
        f"      {hot.reserves_per_s:,.0f} reserves/s, {shard_us:.1f} us of shard CPU each"
        f" (its core alone would allow {hot.cpu_ceiling_per_s:,.0f}/s)"
    )
    return hot
