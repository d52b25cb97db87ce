"""What bootstrap opens is closed again when a start fails: an opened pool that is never
closed kept the process from exiting, and a process whose start is retried (the payments
worker, under ``supervise``) would leak one pool per try."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from matchday import bootstrap
from matchday.inventory.client import InventoryClient
from matchday.inventory.routing import Router
from matchday.inventory.wire import WireMutation, WireOutcome
from matchday.payments import factory
from matchday.payments.gateway import PaymentGateway, TestGateway
from matchday.payments.router import PaymentRouter
from matchday.settings import Settings
from matchday.storage import db

STRIPE = {"stripe_api_key": "sk_test_primary", "payment_region": "eu-test"}
KEY = secrets.token_hex(24)


def engine() -> InventoryClient:
    async def send(shard: int, batch: list[WireMutation]) -> list[WireOutcome]:
        raise AssertionError("nothing calls the engine while a process starts")

    return InventoryClient(send, Router(1, 0))


class Pools:
    """Stands in for ``make_pool``: the pools it made, and which of them are still open."""

    def __init__(self) -> None:
        self.made: list[str] = []
        self.open: set[str] = set()

    def __call__(self, url: str, **kw: Any) -> Any:
        name = str(kw.get("name"))
        self.made.append(name)
        pools = self

        class Pool:
            async def open(self, wait: bool = True) -> None:
                pools.open.add(name)

            async def close(self) -> None:
                pools.open.discard(name)

        return Pool()


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> Pools:
    made = Pools()
    monkeypatch.setattr(db, "make_pool", made)  # every bootstrap module calls db.make_pool
    return made


def never() -> PaymentGateway:
    raise AssertionError("a Stripe process never asks for the test gateway")


async def test_a_missing_secret_key_is_refused_before_any_pool_opens(pools: Pools) -> None:
    with pytest.raises(ValueError, match="secret_key"):
        await bootstrap.open_shop(Settings(secret_key=""))
    assert pools.made == []


async def test_the_test_gateway_is_the_callers_and_opens_no_pool(pools: Pools) -> None:
    gateway = TestGateway()
    parts = await bootstrap.open_gateway(Settings(), test_gateway=lambda: gateway, pool_name="p")
    assert parts.gateway is gateway
    await parts.close()
    assert pools.made == []


async def test_a_test_gateway_not_there_yet_leaves_nothing_open(pools: Pools) -> None:
    def not_deployed() -> PaymentGateway:
        raise RuntimeError("Serve has not deployed the Payments deployment yet")

    with pytest.raises(RuntimeError, match="not deployed"):
        await bootstrap.open_payments_worker(
            Settings(secret_key=KEY), engine(), test_gateway=not_deployed
        )
    assert pools.made == []


async def test_with_stripe_every_process_builds_the_same_router(pools: Pools) -> None:
    s = Settings(secret_key=KEY, **STRIPE)
    parts = await bootstrap.open_gateway(s, test_gateway=never, pool_name="p")
    assert isinstance(parts.gateway, PaymentRouter)
    assert parts.gateway.region == "eu-test"
    assert {g.attempts.region for g in parts.gateway.gateways.values()} == {"eu-test"}
    assert pools.open == {"p"}
    await parts.close()
    assert pools.open == set()


@pytest.mark.parametrize("role", ["worker", "webhooks"])
async def test_a_start_that_fails_after_the_gateway_opened_closes_its_pool(
    pools: Pools, role: str
) -> None:
    # An empty key is refused once the gateway's pool is open.
    s = Settings(secret_key="", redis_url="redis://127.0.0.1:1", **STRIPE)
    opening = bootstrap.open_payments_worker if role == "worker" else bootstrap.open_webhooks
    with pytest.raises(ValueError, match="secret_key"):
        await opening(s, engine(), test_gateway=never)
    gateway_pool = "payments-worker-gw" if role == "worker" else "matchday-webhooks-gw"
    assert pools.made[0] == gateway_pool and pools.open == set()


async def test_a_gateway_that_cannot_be_built_closes_its_pool(
    pools: Pools, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> PaymentGateway:
        raise ValueError("no such capture method")

    monkeypatch.setattr(factory, "build_gateway", broken)
    with pytest.raises(ValueError, match="capture method"):
        await bootstrap.open_gateway(Settings(**STRIPE), test_gateway=never, pool_name="p")
    assert pools.made == ["p"] and pools.open == set()


async def test_an_operators_pool_is_closed_when_the_command_fails(pools: Pools) -> None:
    with pytest.raises(RuntimeError, match="refused"):
        async with bootstrap.operator_pool(Settings(), "matchday-cli") as pool:
            assert pools.open == {"matchday-cli"}
            bootstrap.audit_log(pool)
            raise RuntimeError("refused")
    assert pools.made == ["matchday-cli"] and pools.open == set()
