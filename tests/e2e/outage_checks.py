"""PostgreSQL, then Redis, killed under shopper load on the Serve deployment, over HTTP.

``matchday run`` (HAProxy ingress, Serve replicas, the engine's shard actors) with its own
embedded servers killed with ``kill -9`` and brought back by the run itself (ADR 0020).
Shoppers browse and add to carts and retry a 503 or 429 with the same Idempotency-Key, as a
browser would. Meanwhile every answer must be a clear one, recovery must come without
restarting a replica, and PostgreSQL must then hold exactly the acknowledged holds.

Run on the second start of tests/e2e/test_run_lifecycle.py, before it is stopped (a stack
start of its own cost the suite about a minute): :func:`heals_kill_9_under_load`.

Orderly restarts of servers the stack does not own, with checkout and Redis failing open,
are the in-process tier's (tests/integration/test_outages_under_load.py): the replicas run
the same code there, and a stack start of its own here cost the suite about two minutes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
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

from cluster.processes import ProcessBook
from matchday.embedded import EmbeddedPostgres
from tests.e2e.run_stack import processes

# The stack's rate limits: six shoppers retrying on one address must not be throttled.
LIMITS = {"MATCHDAY_RATE_LIMIT_PER_S": "10000", "MATCHDAY_RATE_LIMIT_BURST": "10000"}

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
# After `matchday run` has its killed server back, no 503 past this: the pools' longest
# reconnect pause is 2 s (RECONNECT_S), a shard's recovery reads its SKUs once.
QUIET_AFTER_S = 10.0


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


@dataclass
class Outages:
    load: Load
    pg_at: float
    pg_recovered: float
    redis_at: float
    redis_recovered: float

    @property
    def pg_up(self) -> float:
        """When PostgreSQL was back (the outage's start() returned)."""
        return self.redis_at - self.pg_recovered


Step = Callable[[], Any]


async def two_outages(
    port: int, pg: tuple[Step, Step], rd: tuple[Step, Step], settle_s: float
) -> Outages:
    """Shoppers on the stack while PostgreSQL, then Redis, go away and come back."""
    load = Load()
    limits = httpx.Limits(max_connections=SHOPPERS * 2)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=30.0, limits=limits
    ) as client:
        shoppers = [asyncio.create_task(shopper(client, n, load)) for n in range(SHOPPERS)]
        try:
            warm_until = time.monotonic() + RECOVERY_S
            while load.ok_since("add", 0.0) < SHOPPERS:  # every shopper adding first
                assert time.monotonic() < warm_until and not load.bad, load.bad
                await asyncio.sleep(0.1)
            pg_at = time.monotonic()
            pg_recovered = await outage(load, *pg)
            redis_at = time.monotonic()
            redis_recovered = await outage(load, *rd)
            await asyncio.sleep(settle_s)
        finally:
            load.stop.set()
            await asyncio.wait_for(asyncio.gather(*shoppers), 60)
    return Outages(load, pg_at, pg_recovered, redis_at, redis_recovered)


def held_in(database_url: str) -> tuple[set[str], tuple[bool | None, ...] | None]:
    """Reservation ids PostgreSQL holds, and whether no SKU has more held or sold than it has."""
    with psycopg.connect(database_url) as conn:
        durable = {
            rid
            for (rid,) in conn.execute(
                "SELECT reservation_id FROM reservations WHERE status = 'held'"
            ).fetchall()
        }
        on_hand_ok = conn.execute(
            "SELECT bool_and(reserved + sold <= on_hand) FROM inventory"
        ).fetchone()
    return durable, on_hand_ok


def kill_9(data: Path, server: str) -> Callable[[], None]:
    def kill() -> None:
        if server == "postgres":
            pid = EmbeddedPostgres(data / "postgres").pid()
        else:
            pid = next(e.pid for e in ProcessBook(data).entries() if e.role == server)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)

    return kill


def since(log: Path, offset: int) -> str:
    return log.read_text()[offset:]


def restarted_by_the_run(log: Path, offset: int, server: str, times: int) -> Callable[[], None]:
    """Waits until `matchday run` says (past ``offset`` of its log) it has the server back."""

    def wait() -> None:
        deadline = time.monotonic() + RECOVERY_S
        while since(log, offset).count(f"{server} restarted") < times:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)

    return wait


def metric(port: int, name: str, server: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10.0).text
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and f'server="{server}"' in line
    ]
    return max(values, default=0.0)


async def heals_kill_9_under_load(scratch: Path, pid: int, port: int) -> str:
    """On the running `matchday run` ``pid`` of ``scratch`` (HAProxy on ``port``, catalog and
    shop, LIMITS): PostgreSQL, then Redis, killed under load and healed by the run. Returns
    what it saw, for the test's output."""
    data, log = scratch / "data", scratch / "run.log"
    offset = len(log.read_text())  # an earlier run of the same log is not this one
    state = json.loads((data / "stack.json").read_text())
    # By pid: a replica's process title names the method it is running now.
    replicas = set(processes(pid, "ray::ServeReplica"))
    seen = await two_outages(
        port,
        (kill_9(data, "postgres"), restarted_by_the_run(log, offset, "postgres", 1)),
        (kill_9(data, "redis"), restarted_by_the_run(log, offset, "redis", 1)),
        settle_s=QUIET_AFTER_S,
    )
    assert set(processes(pid, "ray::ServeReplica")) == replicas
    # Visible in metrics: Ray exports what `matchday run` records (10 s period).
    deadline = time.monotonic() + 60
    restarts = {"postgres": 0.0, "redis": 0.0}
    while min(restarts.values()) < 1:
        assert time.monotonic() < deadline, restarts
        await asyncio.sleep(2)
        restarts = {
            s: metric(state["metrics_export_port"], "ray_matchday_embedded_restarts_total", s)
            for s in restarts
        }
    durable, on_hand_ok = held_in(state["database_url"])

    load = seen.load
    assert not load.bad, load.bad
    assert {s for _, _, s in load.answers} <= {200, 201, 409, 429, 503}
    pg_window = Counter((w, s) for t, w, s in load.answers if seen.pg_at < t < seen.redis_at)
    # The kills were real, and healed by the run: shoppers added before and after each.
    # (Whether any request saw a 503 depends on the timing: a request waits up to the
    # pool's 10 s for a connection, and PostgreSQL is back in 2-4 s.)
    text = since(log, offset)
    assert text.count("postgres is gone") == 1 and text.count("redis is gone") == 1
    assert load.ok_since("add", seen.redis_at) > 0
    assert seen.pg_recovered < RECOVERY_S and seen.redis_recovered < RECOVERY_S
    # The 503s stop within QUIET_AFTER_S of PostgreSQL being back.
    late = [
        t - seen.pg_up for t, _, s in load.answers if s == 503 and seen.pg_up < t < seen.redis_at
    ]
    assert max(late, default=0.0) < QUIET_AFTER_S, late
    assert durable == load.held
    assert on_hand_ok == (True,)
    return (
        f"kill -9: adds again {seen.pg_recovered:.2f}s after matchday run restarted"
        f" PostgreSQL, {seen.redis_recovered:.2f}s after Redis; last 503"
        f" {max(late, default=0.0):.2f}s after; {len(load.held)} holds durable;"
        f" during PostgreSQL's: {pg_window}"
    )
