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


# `matchday run` stacks shared by a session (defined there: they need free_port above).
from tests.e2e.run_stack import haproxy_run, python_run  # noqa: E402, F401
