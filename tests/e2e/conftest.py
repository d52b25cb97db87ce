"""End-to-end: the Serve apps deployed from serve_config.yaml on Ray, reached over HTTP."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, settings: Any, base: str) -> None:
        self.settings = settings
        self.base = base

    def client(self, prefix: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"{self.base}{prefix}", timeout=30.0)


@pytest.fixture(scope="session")
def served(settings: Any, ray_session: Any) -> Iterator[Served]:
    from actors.client import start_inventory, stop_inventory
    from cluster.serving import deploy, load_config, shutdown
    from matchday.catalog.demo import seed_catalog  # noqa: F401 - imported to fail early

    s = type(settings)(
        **{
            **settings.payload(),
            "secret_key": secrets.token_hex(24),
            "rate_limit_per_s": 10_000.0,
            "rate_limit_burst": 10_000,
        }
    )
    start_inventory(s)
    port = free_port()
    config = load_config(settings=s.payload(), port=port)
    deploy(config, say=lambda _: None)
    try:
        yield Served(s, f"http://127.0.0.1:{port}")
    finally:
        shutdown()
        stop_inventory(s)


def run(coro: Any) -> Any:
    return asyncio.get_event_loop().run_until_complete(coro)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """e2e tests that start stacks of their own run before the ones on the session's Serve
    stack (`served`): an idle stack burns about 0.4 of the 2 cores, and a stack starting
    beside it takes longer and times out more often. A stable sort: file order stays."""
    e2e = [i for i in items if "tests/e2e/" in str(i.path)]
    if not e2e:
        return
    first = items.index(e2e[0])
    rest = [i for i in items[first:] if i not in set(e2e)]
    ordered = sorted(e2e, key=lambda i: "served" in getattr(i, "fixturenames", ()))
    items[first:] = ordered + rest
