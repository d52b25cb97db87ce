"""The supervisor `matchday run` uses, on real embedded servers killed with kill -9 (as root
too: this machine's tests run as root, where PostgreSQL runs as its own system user and only
matchday's own start works)."""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest
import redis

from matchday.embedded import EmbeddedPostgres, EmbeddedRedis
from matchday.metrics import EMBEDDED_RESTARTS, MemoryMetrics
from matchday.supervisor import Supervisor

pytestmark = pytest.mark.integration


def restarted(metrics: MemoryMetrics, name: str) -> float:
    """Seconds until the supervisor counts the restart (its start has then returned: the
    server answers)."""
    started = time.monotonic()
    while metrics.count(EMBEDDED_RESTARTS, server=name) < 1:
        assert time.monotonic() - started < 60, f"{name} did not come back"
        time.sleep(0.05)
    return time.monotonic() - started


def test_postgres_and_redis_killed_with_kill_9_are_restarted_with_their_data(
    own_postgres: EmbeddedPostgres, own_redis: EmbeddedRedis
) -> None:
    with psycopg.connect(own_postgres.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    redis.Redis.from_url(own_redis.url).set("kept", "42")
    time.sleep(1.5)  # appendfsync everysec: on disk within a second
    metrics = MemoryMetrics()
    supervisor = Supervisor([own_postgres, own_redis], metrics=metrics)
    supervisor.start()
    try:
        old = own_postgres.pid()
        assert old is not None
        os.kill(old, signal.SIGKILL)
        pg_took = restarted(metrics, "postgres")
        assert own_postgres.pid() != old
        with psycopg.connect(own_postgres.url) as conn:
            assert conn.execute("SELECT n FROM kept").fetchall() == [(42,)]

        old = own_redis.pid()
        assert old is not None
        os.kill(old, signal.SIGKILL)
        redis_took = restarted(metrics, "redis")
        assert own_redis.pid() != old
        assert redis.Redis.from_url(own_redis.url).get("kept") == b"42"
    finally:
        supervisor.stop()
    assert supervisor.restarts() == {"postgres": 1, "redis": 1}
    assert metrics.count(EMBEDDED_RESTARTS, server="postgres") == 1
    assert metrics.count(EMBEDDED_RESTARTS, server="redis") == 1
    print(f"back after kill -9: PostgreSQL {pg_took:.2f} s, Redis {redis_took:.2f} s")
