"""The outbox relay's loop: when it runs again at once, when it naps, how it backs off.

The runs themselves are tested against PostgreSQL and Redis
(tests/integration/test_outbox_relay.py); here ``run_once`` is scripted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from matchday.events.relay import OutboxRelay


class NoRedis:
    def register_script(self, script: str) -> object:
        return object()


class Stop(BaseException):
    """Ends ``run`` (it catches Exception, as it must)."""


async def naps_after(results: list[int | Exception], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What ``run`` slept after each scripted run (None: it went on at once)."""
    relay = OutboxRelay(None, NoRedis(), stream="s", availability_key="a", batch=100)  # type: ignore[arg-type]
    script = iter(results)
    log: list[Any] = []

    async def run_once() -> int:
        if log and log[-1] == "run":
            log[-1] = None  # the previous run was followed by no sleep
        log.append("run")
        try:
            result = next(script)
        except StopIteration:
            raise Stop from None
        if isinstance(result, Exception):
            raise result
        return result

    async def sleep(s: float) -> None:
        log[-1] = s

    relay.run_once = run_once  # type: ignore[method-assign]
    monkeypatch.setattr(asyncio, "sleep", sleep)
    with pytest.raises(Stop):
        await relay.run(idle_s=0.05, max_backoff_s=0.4)
    return log[:-1]


async def test_a_full_run_goes_on_at_once_and_any_other_naps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Under load a run that was not full waits idle_s before the next, so the next carries
    # what came meanwhile; no empty run follows a busy one.
    assert await naps_after([100, 100, 3, 1, 0, 0], monkeypatch) == [
        None, None, 0.05, 0.05, 0.05, 0.05,
    ]  # fmt: skip


async def test_failures_back_off_doubling_up_to_the_cap_and_a_success_resets_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    down = ConnectionError("redis away")
    assert await naps_after([down, down, down, down, down, 2, down], monkeypatch) == [
        0.1, 0.2, 0.4, 0.4, 0.4, 0.05, 0.1,
    ]  # fmt: skip
