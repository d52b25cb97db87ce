"""Which local processes are a stack's PostgreSQL and Redis, so that their CPU is read too.

The benchmarks (``bench/``) and ``matchday capacity measure`` both charge the servers' CPU
to their roles (``matchday.ops.cpu_roles``); a server on another machine has no CPU to read
here, and its role is then missing from the figures.
"""

from __future__ import annotations

from pathlib import Path

import psutil  # type: ignore[import-untyped]

from matchday.ops.cpu_roles import POSTGRES, REDIS


def postmaster_pid(pgdata: Path) -> int | None:
    """The postmaster of the PostgreSQL whose data directory is ``pgdata``, from its pid file."""
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def local(pid: int | None, name: str) -> int | None:
    """``pid`` if a process of that name runs on this machine, else None."""
    try:
        return pid if pid and name in psutil.Process(pid).name() else None
    except psutil.Error:
        return None


def server_pids(database_url: str, redis_url: str) -> dict[str, int | None]:
    """PostgreSQL's postmaster and redis-server, when they run on this machine (each asked
    where it is: its data directory, its process id)."""
    import psycopg
    import redis

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    client = redis.Redis.from_url(redis_url)
    try:
        redis_pid = int(client.info("server").get("process_id", 0))
    finally:
        client.close()
    postmaster = postmaster_pid(Path(row[0])) if row else None
    return {POSTGRES: local(postmaster, "postgres"), REDIS: local(redis_pid, "redis")}
