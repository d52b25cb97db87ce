"""A plain client of the session's Redis, for tests of one Redis-backed component."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from matchday.settings import Settings


@pytest.fixture(name="redis")
async def redis_client(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    try:
        yield client
    finally:
        await client.aclose()
