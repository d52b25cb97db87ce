"""Real PostgreSQL, Redis and Ray for integration tests.

Each test run gets fresh embedded servers in a temporary data directory, removed at the end
even when tests fail; MATCHDAY_DATABASE_URL / MATCHDAY_REDIS_URL point the run at real
servers instead. Tests isolate themselves by random SKU and request ids, not by teardown.
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from actors.ray_env import keep_ray_on_loopback
from cluster.serving import serve_env_defaults
from matchday.embedded import EmbeddedPostgres, EmbeddedRedis, remove_tree, start_servers
from matchday.settings import Settings
from matchday.storage.db import make_pool, migrate
from matchday.storage.inventory_repo import InventoryRepository
from tests.background import end_leftovers, running_tasks

keep_ray_on_loopback()  # before anything imports ray


def uid(prefix: str = "t") -> str:
    """A fresh id: base32 (a-z, 2-7), as loadtests/client.py makes them. A hex id is all
    digits one time in 280, and a SKU made of it plus "-0" was then a 13-digit run that
    passed Luhn one time in ten: the PAN guard refused the test's request as a card."""
    return f"{prefix}-{base64.b32encode(os.urandom(8)).decode()[:12].lower()}"


@pytest.fixture(autouse=True)
async def no_background_work_outlives_its_test() -> AsyncIterator[None]:
    """Streams, drains, pollers and tasks a test started end with it (tests/background.py):
    set up before the test's own function-scoped fixtures, so checked after they closed."""
    before = running_tasks()
    yield
    leaked = await end_leftovers(before)
    if leaked:
        pytest.fail("left running after the test (now cancelled): " + ", ".join(leaked))


@pytest.fixture(scope="session", autouse=True)
async def no_background_work_outlives_the_session() -> AsyncIterator[None]:
    """What session- and module-scoped fixtures started ends before the session does."""
    before = running_tasks()
    yield
    leaked = await end_leftovers(before)
    if leaked:
        pytest.fail("left running after the session (now cancelled): " + ", ".join(leaked))


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="matchday-test-"))
    yield path
    remove_tree(path)


@pytest.fixture(scope="session")
def settings(data_dir: Path) -> Iterator[Settings]:
    db_url, redis_url, started = start_servers(
        os.environ.get("MATCHDAY_DATABASE_URL", ""),
        os.environ.get("MATCHDAY_REDIS_URL", ""),
        data_dir,
    )
    try:
        migrate(db_url)
        yield Settings(
            database_url=db_url,
            redis_url=redis_url,
            data_dir=data_dir,
            namespace=uid("matchday-test"),
            stream_name=uid("stream"),
            availability_key=uid("availability"),
        )
    finally:
        for server in reversed(started):
            server.stop()


@contextmanager
def database_of_its_own(settings: Settings, prefix: str) -> Iterator[Settings]:
    """``settings`` with a fresh, migrated database on the session's PostgreSQL server:
    for tests whose code reads every row of a table (a worker claiming every due order)."""
    name = uid(prefix).replace("-", "_").lower()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(settings.database_url, dbname=name)
    try:
        migrate(url)
        yield Settings(**{**settings.payload(), "database_url": url})
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))


@pytest.fixture
async def repo(settings: Settings) -> AsyncIterator[InventoryRepository]:
    pool = make_pool(settings.database_url, max_size=8)
    await pool.open()
    try:
        yield InventoryRepository(pool)
    finally:
        await pool.close()


@pytest.fixture(scope="session")
def ray_session(settings: Settings) -> Iterator[Any]:
    import ray

    # A private, loopback-only test cluster. Forced, not defaulted: an in-process call of the
    # CLI's main() (which defaults it to "token" for joining a running stack) must not leave
    # the session's GCS expecting a token its driver never sends.
    os.environ["RAY_AUTH_MODE"] = "disabled"
    serve_env_defaults()  # Serve tuned as `matchday run` tunes it
    ray.init(
        num_cpus=2,
        namespace=settings.namespace,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def own_postgres(data_dir: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, for tests that stop and start it."""
    pg = EmbeddedPostgres(data_dir / uid("pg")).start()
    try:
        migrate(pg.url)
        yield pg
    finally:
        pg.stop("immediate")


@pytest.fixture
def own_redis(data_dir: Path) -> Iterator[EmbeddedRedis]:
    rd = EmbeddedRedis(data_dir / uid("redis")).start()
    try:
        yield rd
    finally:
        rd.stop()
