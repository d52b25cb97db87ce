"""measure's mixed phase against a probe that answers without HTTP and a meter that charges
each answered request: the phase's own logic (journeys, fans, costs, a mix left out), no Ray,
no servers."""

from __future__ import annotations

import asyncio
import os
import time
from types import SimpleNamespace
from typing import Any

import pytest

from cluster.capacity_mixed import measure_mixes
from cluster.capacity_probe import Fan, Fixture, Probe
from cluster.capacity_run import Mixes, Run
from loadtests import mixes
from matchday.capacity import classes as k
from matchday.capacity.costs import Window
from matchday.capacity.journeys import mix_shares
from matchday.capacity.profile import ClassCost, Idle

IDLE = Idle(seconds=10.0, cores={"ray:gcs": 0.25}, pg_write_xacts_per_s=0,
            pg_wal_bytes_per_s=0, redis_cmds_per_s=0)  # fmt: skip
LATENCY_MS = 2.0


def light(cls: str) -> ClassCost:
    return ClassCost.model_validate({
        "requests": 100, "errors": 0, "rate_per_s": 400.0,
        "latency": {"mean_ms": LATENCY_MS, "p50_ms": 1.0, "p99_ms": 1.0},
        "cpu_us": {"haproxy": 100.0}, "pg_write_xacts": 0, "pg_wal_bytes": 0, "redis_cmds": 0,
    })  # fmt: skip


class JourneyProbe(Probe):
    """Answers as the shop would, checking each fan's requests come in a journey's order;
    ``refuse`` answers 503 for those classes."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        super().__init__(None, "http://probe", Fixture("R", "s", ("A", "B"), "C", "D", "p"))
        self.answered, self.refuse = 0, refuse
        self.sent: list[tuple[str, Fan | None]] = []  # (class, its fan: kept alive)
        self.out_of_order: list[str] = []

    async def send(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        raise AssertionError("no HTTP here")

    async def _answer(self, cls: str, fan: Fan | None, status: int, need: str = "") -> int:
        await asyncio.sleep(0)
        self.sent.append((cls, fan))
        if need and fan is not None and not getattr(fan, need):
            self.out_of_order.append(cls)
        if cls in self.refuse:
            return 503
        self.answered += 1
        return status

    async def browse(self, i: int) -> int:
        return await self._answer(k.BROWSE, None, 200)

    async def product(self, i: int) -> int:
        return await self._answer(k.PRODUCT, None, 200)

    async def availability(self, i: int) -> int:
        return await self._answer(k.AVAILABILITY, None, 200)

    async def session(self, i: int, fan: Fan | None = None) -> int:
        assert fan is not None and not fan.token, "a journey's fan starts with its session"
        fan.token = "t"
        return await self._answer(k.SESSION, fan, 201)

    async def cart(self, i: int, fan: Fan | None = None) -> int:
        status = await self._answer(k.CART, fan, 201, need="token")
        if fan is not None:
            fan.cart = "c"
        return status

    async def add_to_cart(self, i: int, fan: Fan | None = None) -> int:
        return await self._answer(k.ADD, fan, 201, need="cart")

    async def add_sold_out(self, i: int, fan: Fan | None = None) -> int:
        return await self._answer(k.ADD_SOLD_OUT, fan, 409, need="cart")

    async def cart_view(self, i: int, fan: Fan | None = None) -> int:
        return await self._answer(k.CART_VIEW, fan, 200, need="cart")

    async def checkout(self, i: int, fan: Fan | None = None) -> int:
        return await self._answer(k.CHECKOUT, fan, 201, need="cart")


class FakeMeter:
    """200 us of ingress CPU and 100 us of the shop's replica per answered request."""

    def __init__(self, probe: JourneyProbe) -> None:
        self.probe = probe

    def read(self) -> Any:
        return SimpleNamespace(cpu=None, at=time.monotonic(), answered=self.probe.answered)

    def window(self, before: Any, after: Any) -> Window:
        n = after.answered - before.answered
        # The orders app's replica is reachable only by a checkout: in flash_sale's mix.
        return Window(after.at - before.at, {"haproxy": 200e-6 * n, "replica:shop": 100e-6 * n,
                                             "replica:polls": 0.5})  # fmt: skip


def run_of(probe: JourneyProbe, *scenarios: str) -> Run:
    run = Run(None, FakeMeter(probe), phase_s=0.5, rate=400.0, tail_s=0.0,  # type: ignore[arg-type]
              rate_high=1000.0, idle=IDLE, mixes=Mixes(scenarios, 0.1, "sold_out"))  # fmt: skip
    run.costs = {c: light(c) for c in k.CLASSES}
    return run


def test_the_mixed_phase_sends_each_scenarios_mix_as_journeys_and_keeps_its_cost(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    probe = JourneyProbe()
    run = run_of(probe, "steady", "flash_sale")
    asyncio.run(measure_mixes(run, probe))
    assert set(run.mixed) == {"steady", "flash_sale"}
    assert not probe.out_of_order
    latency = {c: LATENCY_MS for c in k.CLASSES}
    for name, got in run.mixed.items():
        want = mix_shares(mixes.load_mix(name), latency, 0.1, "sold_out")
        # What was sent: 200 requests leave out a class of under 1% (flash_sale's checkout).
        assert set(got.shares) <= set(want)
        assert all(got.shares.get(c, 0) == pytest.approx(s, abs=0.03) for c, s in want.items())
        assert (got.think, got.stock) == (0.1, "sold_out")
        # 200 requests a phase, each 200 us of ingress and 100 of the shop's replica; the
        # polls' replica no class of the mix reaches is left out.
        assert got.cost.cpu_us == {"haproxy": pytest.approx(200),
                                   "replica:shop": pytest.approx(100)}  # fmt: skip
        assert 200 <= got.cost.requests <= 210
        assert got.cost.high is not None and got.cost.high.rate_per_s > got.cost.rate_per_s
        # The second phase as long as the first, at 1,000/s: 2.5x the journeys' requests.
        assert 500 <= got.cost.high.requests <= 510
    # Each fan's requests came from one journey, its session first (checked as they came).
    sessions = sum(1 for c, _ in probe.sent if c == k.SESSION)
    fans = {id(f) for c, f in probe.sent if c not in (k.BROWSE, k.PRODUCT, k.AVAILABILITY)}
    assert len(fans) == sessions
    err = capsys.readouterr().err
    assert "[mix 1/2] steady: think x0.1, drop sold out: browse" in err
    assert "[mix 2/2] flash_sale high:" in err


def test_a_mix_the_stack_answers_badly_is_left_out_for_the_classes_to_plan(
    capsys: pytest.CaptureFixture[str],
) -> None:
    probe = JourneyProbe(refuse=(k.SESSION,))
    run = run_of(probe, "flash_sale")
    asyncio.run(measure_mixes(run, probe))
    assert run.mixed == {}
    assert "[mix 1/1] flash_sale: not kept: answers {'503':" in capsys.readouterr().err


def test_a_real_probe_makes_a_journeys_requests_for_its_own_fan() -> None:
    probe = Probe(None, "http://probe", Fixture("R", "s", ("A", "B"), "C", "D", "p"))
    calls: list[tuple[str, str, str]] = []

    async def send(method: str, path: str, *, token: str = "", **kw: Any) -> tuple[int, Any]:
        calls.append((method, path, token))
        if path == "/api/shop/session":
            return 201, {"customer_id": "c1", "token": "tok"}
        return 201, {"cart_id": "cart1"}

    probe.send = send  # type: ignore[method-assign]
    fan = Fan("", "")

    async def journey() -> None:
        for cls in (k.SESSION, k.CART, k.ADD, k.BROWSE):
            await probe.for_fan(cls, fan)(0)

    asyncio.run(journey())
    assert (fan.token, fan.cart) == ("tok", "cart1") and probe.fans == []
    assert calls[2] == ("POST", "/api/shop/carts/cart1/items", "tok")
    assert calls[3][1] == "/api/catalog/products" and calls[3][2] == ""
