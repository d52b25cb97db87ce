"""PostgreSQL, then Redis, restarted under shopper load on the Serve deployment, over HTTP.

The in-process variant (tests/integration/test_outages_under_load.py) covers checkout; this
one is the deployed system: ``matchday run`` (HAProxy ingress, Serve replicas, the engine's
shard actors) against a PostgreSQL and a Redis of this test's own (tests/conftest.py), so
stopping them cannot touch the shared ``served`` stack. Shoppers browse and add to carts and
retry a 503 or 429 with the same Idempotency-Key, as a browser would. Meanwhile every answer
must be a clear one, recovery must come without restarting a replica, and PostgreSQL must
then hold exactly the acknowledged holds.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from matchday.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.e2e.conftest import free_port
from tests.e2e.run_stack import matchday_run, processes

pytestmark = pytest.mark.e2e

SHOPPERS = 6
PACE_S = 0.05  # between a shopper's cycles: the demo stock must last the whole test
# Demo SKUs without per-customer limits: 3 x 500 balls and 18 x 80 boots.
SKUS = [f"BALL-{b}" for b in ("MATCH-5", "TRAINING-5", "TRAINING-4")] + [
    f"BOOTS-{m}-{s}" for m in ("STRIKER", "KEEPER") for s in range(38, 47)
]
BROWSE = ("boots-striker", "boots-keeper", "jersey-final-ltd")
OUTAGE_S = 2.0
# The pool waits 10 s for a connection at most (matchday/storage/db.py): past this, a hang.
REQUEST_TIMEOUT_S = 15.0
RECOVERY_S = 30.0


@dataclass
class Load:
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    answers: list[tuple[float, str, int]] = field(default_factory=list)  # (time, what, status)
    bad: list[str] = field(default_factory=list)
    held: set[str] = field(default_factory=set)  # reservation ids acknowledged with 201

    def ok_since(self, what: str, since: float) -> int:
        return sum(1 for t, w, s in self.answers if w == what and t > since and s < 300)


def clear_refusal(r: httpx.Response) -> bool:
    """A 503 or 429 a client can act on: JSON with a stable code, and when to come back."""
    try:
        body = r.json()
    except ValueError:
        return False
    if not isinstance(body, dict) or not body.get("code"):
        return False
    if r.status_code in (503, 429):
        return int(r.headers.get("Retry-After", "0")) >= 1
    # The same Idempotency-Key still running: its first try has not answered yet.
    return r.status_code == 409 and body.get("retryable") is True


async def until_final(
    load: Load, what: str, send: Callable[[], Awaitable[httpx.Response]], ok: int
) -> httpx.Response:
    while True:
        try:
            r = await asyncio.wait_for(send(), REQUEST_TIMEOUT_S)
        except (TimeoutError, httpx.TransportError) as exc:
            load.bad.append(f"{what}: {type(exc).__name__} {exc}")
            raise
        load.answers.append((time.monotonic(), what, r.status_code))
        if r.status_code == ok:
            return r
        if not clear_refusal(r):
            load.bad.append(f"{what}: {r.status_code} {r.headers} {r.text[:300]}")
            raise AssertionError(load.bad[-1])
        await asyncio.sleep(0.1)  # shorter than Retry-After: recovery is measured closely


async def shopper(client: httpx.AsyncClient, n: int, load: Load) -> None:
    session = await until_final(load, "session", partial(client.post, "/api/shop/session"), 201)
    auth = {"Authorization": f"Bearer {session.json()['token']}"}
    skus = itertools.cycle(SKUS[n % len(SKUS) :] + SKUS[: n % len(SKUS)])
    for cycle in itertools.count():
        if load.stop.is_set():
            return
        slug = BROWSE[cycle % len(BROWSE)]
        await until_final(load, "browse", partial(client.get, f"/api/catalog/products/{slug}"), 200)
        key = f"{n}-{cycle}-{uuid.uuid4().hex[:8]}"
        cart = await until_final(
            load,
            "cart",
            partial(client.post, "/api/shop/carts", headers={**auth, "Idempotency-Key": f"c{key}"}),
            201,
        )
        added = await until_final(
            load,
            "add",
            partial(
                client.post,
                f"/api/shop/carts/{cart.json()['cart_id']}/items",
                json={"sku": next(skus), "qty": 1},
                headers={**auth, "Idempotency-Key": f"a{key}"},
            ),
            201,
        )
        load.held.add(added.json()["reservation_id"])
        await asyncio.sleep(PACE_S)


async def outage(load: Load, stop: Callable[[], None], start: Callable[[], Any]) -> float:
    """Stop a server for OUTAGE_S under load, start it; seconds until adds succeed again."""
    await asyncio.sleep(1.5)  # steady state first
    await asyncio.to_thread(stop)
    await asyncio.sleep(OUTAGE_S)
    await asyncio.to_thread(start)
    up_at = time.monotonic()
    while load.ok_since("add", up_at) == 0:
        assert time.monotonic() - up_at < RECOVERY_S, "no add-to-cart succeeded after restart"
        assert not load.bad, load.bad
        await asyncio.sleep(0.05)
    return time.monotonic() - up_at


async def test_postgres_and_redis_restarts_on_serve_are_clear_503s_and_lose_no_ack(
    own_postgres: EmbeddedPostgres, own_redis: EmbeddedRedis
) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="matchday-outage-"))
    port = free_port()
    try:
        with matchday_run(
            scratch,
            MATCHDAY_DATABASE_URL=own_postgres.url,
            MATCHDAY_REDIS_URL=own_redis.url,
            MATCHDAY_INGRESS="haproxy",
            MATCHDAY_HTTP_PORT=str(port),
            MATCHDAY_RATE_LIMIT_PER_S="10000",
            MATCHDAY_RATE_LIMIT_BURST="10000",
            # Other stacks on this machine may hold HAProxy's default 8404 and 9101.
            RAY_SERVE_HAPROXY_STATS_PORT=str(free_port()),
            RAY_SERVE_HAPROXY_METRICS_PORT=str(free_port()),
        ) as (log, pid):
            replicas = processes(pid, "ray::ServeReplica")
            assert replicas, log.read_text()[-2000:]
            load = Load()
            limits = httpx.Limits(max_connections=SHOPPERS * 2)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=30.0, limits=limits
            ) as client:
                shoppers = [asyncio.create_task(shopper(client, n, load)) for n in range(SHOPPERS)]
                try:
                    pg_at = time.monotonic()
                    pg_recovered = await outage(
                        load, lambda: own_postgres.stop("immediate"), own_postgres.start
                    )
                    redis_at = time.monotonic()
                    redis_recovered = await outage(load, own_redis.stop, own_redis.start)
                    await asyncio.sleep(1.0)
                finally:
                    load.stop.set()
                    await asyncio.wait_for(asyncio.gather(*shoppers), 60)
            # Recovered by itself: the same replica processes before and after.
            assert processes(pid, "ray::ServeReplica") == replicas

        assert not load.bad, load.bad
        statuses = {s for _, _, s in load.answers}
        assert statuses <= {200, 201, 409, 429, 503}, statuses
        pg_window = Counter((w, s) for t, w, s in load.answers if pg_at < t < redis_at)
        # The PostgreSQL outage was seen, and seen as clear 503s.
        assert sum(n for (_, s), n in pg_window.items() if s == 503) > 0, pg_window
        assert pg_recovered < RECOVERY_S and redis_recovered < RECOVERY_S
        # Redis down must not stop add-to-cart: the limiter and idempotency fail open.
        redis_down = (redis_at + 1.5, redis_at + 1.5 + OUTAGE_S)
        assert any(
            w == "add" and s == 201 and redis_down[0] < t < redis_down[1]
            for t, w, s in load.answers
        )
        assert load.ok_since("browse", redis_at) > 0

        # Every 201 is durable, and PostgreSQL holds no hold that was not acknowledged.
        with psycopg.connect(own_postgres.url) as conn:
            durable = {
                rid
                for (rid,) in conn.execute(
                    "SELECT reservation_id FROM reservations WHERE status = 'held'"
                ).fetchall()
            }
            on_hand_ok = conn.execute(
                "SELECT bool_and(reserved + sold <= on_hand) FROM inventory"
            ).fetchone()
        assert durable == load.held
        assert on_hand_ok == (True,)
        print(
            f"adds again {pg_recovered:.2f}s after PostgreSQL restarted,"
            f" {redis_recovered:.2f}s after Redis; {len(load.held)} holds,"
            f" {sum(s == 503 for _, _, s in load.answers)} 503s; during PostgreSQL's: {pg_window}"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
