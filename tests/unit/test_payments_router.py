"""The payments router and its circuit breakers, over fake gateways and a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from matchday.domain.errors import Unavailable
from matchday.payments.gateway import ChargeRequest, ChargeResult, RefundResult
from matchday.payments.router import CircuitBreaker, PaymentRouter


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


class FakeGateway:
    def __init__(self, name: str, answers: list[str]) -> None:
        self.name = name
        self.answers = answers  # "succeeded", "declined", "down" ... one per call, last repeats
        self.calls: list[str] = []
        self.refunds: list[str] = []

    async def charge(self, req: ChargeRequest) -> ChargeResult:
        answer = self.answers[min(len(self.calls), len(self.answers) - 1)]
        self.calls.append(req.idempotency_key)
        if answer == "down":
            raise Unavailable(f"{self.name} timed out")
        return ChargeResult(answer, self.name, f"pi_{self.name}_{len(self.calls)}")  # type: ignore[arg-type]

    async def refund(self, payment_ref: str, amount_cents: int, key: str) -> RefundResult:
        self.refunds.append(payment_ref)
        return RefundResult(self.name, f"re_{key}", amount_cents)


def req(order: str = "o_1") -> ChargeRequest:
    return ChargeRequest(order, 1, 1000, "EUR", "pm_card_visa", "c1")


def breaker(clock: FakeClock, failures: int = 2, reset_s: float = 30.0) -> CircuitBreaker:
    return CircuitBreaker(failures=failures, reset_s=reset_s, clock=clock)


def test_a_breaker_opens_after_consecutive_failures_and_refuses_calls() -> None:
    b = breaker(FakeClock(), failures=3)
    b.failure()
    b.failure()
    assert b.state == "closed" and b.allow()
    b.success()  # a success resets the count
    b.failure()
    b.failure()
    assert b.state == "closed"
    b.failure()
    assert b.state == "open" and not b.allow()


def test_an_open_breaker_lets_one_trial_through_after_its_reset_time() -> None:
    clock = FakeClock()
    b = breaker(clock, failures=1, reset_s=30)
    b.failure()
    clock.t += 29.9
    assert not b.allow()
    clock.t += 0.2
    assert b.allow() and b.state == "half_open"
    assert not b.allow()  # one trial at a time


def test_a_half_open_trial_that_succeeds_closes_the_breaker() -> None:
    clock = FakeClock()
    b = breaker(clock, failures=1)
    b.failure()
    clock.t += 31
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow() and b.allow()


def test_a_half_open_trial_that_fails_opens_it_again_for_a_full_reset_time() -> None:
    clock = FakeClock()
    b = breaker(clock, failures=5)
    for _ in range(5):
        b.failure()
    clock.t += 31
    assert b.allow()
    b.failure()
    assert b.state == "open" and not b.allow()
    clock.t += 29
    assert not b.allow()
    clock.t += 2
    assert b.allow()


async def test_the_primary_answers_when_it_is_up() -> None:
    primary, backup = FakeGateway("p", ["succeeded"]), FakeGateway("b", ["succeeded"])
    router = PaymentRouter([primary, backup], region="eu")
    result = await router.charge(req())
    assert result.gateway == "p" and backup.calls == []
    assert router.counters[("p", "eu", "succeeded")] == 1


async def test_an_outage_fails_over_to_the_backup_under_the_same_key() -> None:
    primary, backup = FakeGateway("p", ["down"]), FakeGateway("b", ["succeeded"])
    router = PaymentRouter([primary, backup], region="eu")
    result = await router.charge(req())
    assert result.gateway == "b"
    assert primary.calls == backup.calls == ["o_1:1"]
    assert router.counters[("p", "eu", "unavailable")] == 1
    assert router.counters[("p", "eu", "failover")] == 1
    assert router.counters[("b", "eu", "succeeded")] == 1


async def test_a_decline_is_final_and_never_fails_over() -> None:
    primary, backup = FakeGateway("p", ["declined"]), FakeGateway("b", ["succeeded"])
    router = PaymentRouter([primary, backup])
    result = await router.charge(req())
    assert result.status == "declined" and backup.calls == []


async def test_requires_action_is_final_too() -> None:
    primary, backup = FakeGateway("p", ["requires_action"]), FakeGateway("b", ["succeeded"])
    assert (await PaymentRouter([primary, backup]).charge(req())).status == "requires_action"
    assert backup.calls == []


async def test_every_gateway_down_is_unavailable_with_each_reason() -> None:
    router = PaymentRouter([FakeGateway("p", ["down"]), FakeGateway("b", ["down"])])
    with pytest.raises(Unavailable) as err:
        await router.charge(req())
    assert "p timed out" in err.value.reason and "b timed out" in err.value.reason


async def test_an_open_breaker_skips_the_primary_until_its_trial() -> None:
    clock = FakeClock()
    primary, backup = (
        FakeGateway("p", ["down", "down", "succeeded"]),
        FakeGateway("b", ["succeeded"]),
    )
    router = PaymentRouter(
        [primary, backup], breakers=[breaker(clock, failures=2), breaker(clock)], region="r"
    )
    for n in range(4):
        await router.charge(req(f"o_{n}"))
    assert len(primary.calls) == 2  # opened after two failures, then skipped
    assert router.counters[("p", "r", "skipped")] == 2
    assert router.stats()["breakers"] == {"p": "open", "b": "closed"}
    clock.t += 31
    result = await router.charge(req("o_9"))
    assert result.gateway == "p" and router.breakers["p"].state == "closed"


async def test_an_attempt_already_made_on_the_backup_is_resolved_there_first() -> None:
    primary, backup = FakeGateway("p", ["succeeded"]), FakeGateway("b", ["succeeded"])

    async def attempted_on(order_id: str, attempt: int) -> list[str]:
        return ["b"]

    router = PaymentRouter([primary, backup], attempted_on=attempted_on)
    assert (await router.charge(req())).gateway == "b"
    assert primary.calls == []


async def test_a_refund_goes_to_the_gateway_that_took_the_payment() -> None:
    primary, backup = FakeGateway("p", ["succeeded"]), FakeGateway("b", ["succeeded"])

    async def made_by(ref: str) -> str | None:
        return "b" if ref.startswith("pi_b") else None

    router = PaymentRouter([primary, backup], made_by=made_by)
    await router.refund("pi_b_1", 100, "k")
    assert backup.refunds == ["pi_b_1"] and primary.refunds == []
    with pytest.raises(Unavailable):
        await router.refund("pi_unknown", 100, "k")


def test_worker_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    import random

    from matchday.shop.payments_worker import PaymentsWorker

    w = PaymentsWorker(None, None, None, {}, base_s=2, max_s=60, rng=random.Random(7))  # type: ignore[arg-type]
    delays = [w.backoff(n) for n in range(1, 10)]
    for n, d in enumerate(delays, start=1):
        full = min(60, 2 * 2 ** (n - 1))
        assert full / 2 <= d <= full
    assert max(delays) <= 60 and len({round(d, 6) for d in delays}) == len(delays)


async def test_a_worker_whose_setup_fails_is_started_again_until_it_runs() -> None:
    import asyncio

    from matchday.tasks import supervise

    stop = asyncio.Event()
    starts: list[float] = []

    async def body() -> None:
        starts.append(asyncio.get_running_loop().time())
        if len(starts) < 3:
            raise ConnectionError("PostgreSQL is restarting")

    assert await supervise(body, stop, first_s=0.01, max_s=0.04) == 2
    assert len(starts) == 3
    assert starts[2] - starts[1] >= starts[1] - starts[0] >= 0.01  # backing off


async def test_a_supervised_worker_that_keeps_failing_stops_when_told() -> None:
    import asyncio

    from matchday.tasks import supervise

    stop = asyncio.Event()
    calls = 0

    async def body() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            stop.set()
        raise RuntimeError("no Payments deployment yet")

    assert await asyncio.wait_for(supervise(body, stop, first_s=0.01, max_s=0.01), 5) == 3


# -- a hung gateway (issue 13) -----------------------------------------------------------------


class HungGateway(FakeGateway):
    """Never answers a charge until ``release`` is set; then answers ``succeeded``."""

    def __init__(self, name: str) -> None:
        super().__init__(name, ["succeeded"])
        self.release = asyncio.Event()

    async def charge(self, req: ChargeRequest) -> ChargeResult:
        self.calls.append(req.idempotency_key)
        await self.release.wait()
        return ChargeResult("succeeded", self.name, f"pi_{self.name}_late")


def test_a_timeout_opens_the_breaker_at_once() -> None:
    b = breaker(FakeClock(), failures=5)
    b.failure(b.generation, trip=True)
    assert b.state == "open" and not b.allow() and b.generation == 1


def test_an_answer_to_a_call_begun_before_the_breaker_opened_changes_nothing() -> None:
    clock = FakeClock()
    b = breaker(clock, failures=5)
    began = b.generation
    b.failure(b.generation, trip=True)  # another caller timed out meanwhile
    b.success(began)  # the slow call's late success
    assert b.state == "open"
    clock.t += 31
    assert b.allow() and b.state == "half_open"
    b.success(began)  # still late: the trial's own answer decides
    assert b.state == "half_open"
    b.success(b.generation)
    assert b.state == "closed"


async def test_a_hung_primary_fails_over_within_the_call_timeout_and_its_breaker_opens() -> None:
    primary, backup = HungGateway("p"), FakeGateway("b", ["succeeded"])
    router = PaymentRouter(
        [primary, backup], breakers=[breaker(FakeClock(), failures=5), breaker(FakeClock())],
        call_timeout_s=0.05,
    )  # fmt: skip
    # A guard against hanging the suite, not a target: the router's own bound ends it first.
    result = await asyncio.wait_for(router.charge(req()), 5)
    assert result.gateway == "b"
    assert router.breakers["p"].state == "open"  # after one timeout, not five
    assert router.counters[("p", "local", "unavailable")] == 1
    await router.charge(req("o_2"))
    assert primary.calls == ["o_1:1"]  # the next checkout went straight to the backup
    assert router.counters[("p", "local", "skipped")] == 1


async def test_a_late_success_never_closes_a_breaker_that_a_timeout_opened() -> None:
    hung = asyncio.Event()
    slow_done = asyncio.Event()

    class Slow(FakeGateway):
        async def charge(self, req: ChargeRequest) -> ChargeResult:
            self.calls.append(req.idempotency_key)
            if req.order_id == "o_hung":
                await hung.wait()
            else:
                await slow_done.wait()  # answers once the breaker is open
            return ChargeResult("succeeded", self.name, "pi_slow")

    primary, backup = Slow("p", ["succeeded"]), FakeGateway("b", ["succeeded"])
    router = PaymentRouter(
        [primary, backup], breakers=[breaker(FakeClock()), breaker(FakeClock())],
        call_timeout_s=0.2,
    )  # fmt: skip
    stuck = asyncio.create_task(router.charge(req("o_hung")))
    await asyncio.sleep(0.05)
    slow = asyncio.create_task(router.charge(req("o_slow")))  # begins while still closed
    assert (await asyncio.wait_for(stuck, 5)).gateway == "b"  # timed out, failed over
    assert router.breakers["p"].state == "open"
    slow_done.set()
    assert (await asyncio.wait_for(slow, 5)).gateway == "p"  # it did answer, in time
    assert router.breakers["p"].state == "open"  # but it cannot vouch for the gateway now


async def test_a_hung_fingerprint_lookup_is_bounded_and_opens_the_breaker() -> None:
    class HungLookup(FakeGateway):
        async def fingerprint(self, token: str) -> str | None:
            await asyncio.Event().wait()
            return "never"

    class Backup(FakeGateway):
        async def fingerprint(self, token: str) -> str | None:
            return "fp_backup"

    router = PaymentRouter(
        [HungLookup("p", ["succeeded"]), Backup("b", ["succeeded"])], call_timeout_s=0.05
    )
    assert await asyncio.wait_for(router.fingerprint("pm_card_visa"), 5) == "fp_backup"
    assert router.breakers["p"].state == "open"


async def test_on_the_last_gateway_standing_a_timeout_counts_like_any_failure() -> None:
    primary, backup = FakeGateway("p", ["down"]), HungGateway("b")
    router = PaymentRouter(
        [primary, backup], breakers=[breaker(FakeClock(), failures=1), breaker(FakeClock())],
        call_timeout_s=0.05,
    )  # fmt: skip
    with pytest.raises(Unavailable):
        await asyncio.wait_for(router.charge(req()), 5)
    assert router.breakers["p"].state == "open"
    # One slow answer must not close the only way left to pay: it takes `failures` in a row.
    assert router.breakers["b"].state == "closed" and router.breakers["b"].consecutive == 1
