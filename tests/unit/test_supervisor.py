"""The supervisor's decisions, on a fake clock: when a dead server is restarted, how the
pauses grow, what it logs and counts. The real servers under kill -9:
tests/integration/test_supervisor.py and tests/e2e/outage_checks.py."""

from __future__ import annotations

import itertools
import logging

import pytest

from matchday.metrics import EMBEDDED_RESTARTS, EMBEDDED_UP, MemoryMetrics
from matchday.supervisor import FIRST_RETRY_S, MAX_RETRY_S, STABLE_S, Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeServer:
    def __init__(self, name: str) -> None:
        self.name = name
        self.up = True
        self.fail_next = 0
        self.restarts = 0
        self._pid = 100

    def alive(self) -> bool:
        return self.up

    def pid(self) -> int | None:
        return self._pid

    def restart(self) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("could not start: shared memory still in use")
        self.restarts += 1
        self._pid += 1
        self.up = True


def setup() -> tuple[Clock, FakeServer, MemoryMetrics, Supervisor, list[str]]:
    clock, pg, metrics = Clock(), FakeServer("postgres"), MemoryMetrics()
    restarted: list[str] = []
    sup = Supervisor(
        [pg], metrics=metrics, clock=clock, on_restart=lambda s: restarted.append(s.name)
    )
    return clock, pg, metrics, sup, restarted


def test_a_dead_server_is_restarted_after_the_first_pause_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, pg, metrics, sup, restarted = setup()
    caplog.set_level(logging.WARNING, logger="matchday.supervisor")
    assert metrics.gauges[(EMBEDDED_UP, (("server", "postgres"),))] == 1.0
    pg.up = False
    sup.check()
    assert metrics.gauges[(EMBEDDED_UP, (("server", "postgres"),))] == 0.0
    assert pg.restarts == 0  # not at once: its old processes need a moment
    clock.now += FIRST_RETRY_S
    sup.check()
    assert pg.restarts == 1 and restarted == ["postgres"]
    assert metrics.count(EMBEDDED_RESTARTS, server="postgres") == 1
    assert metrics.gauges[(EMBEDDED_UP, (("server", "postgres"),))] == 1.0
    assert sup.restarts() == {"postgres": 1}
    messages = [r.getMessage() for r in caplog.records if r.name == "matchday.supervisor"]
    assert any("postgres is gone" in m for m in messages)
    assert any("postgres restarted (pid 101)" in m for m in messages)


def test_failed_attempts_back_off_doubling_up_to_a_cap() -> None:
    clock, pg, _, sup, _ = setup()
    pg.up, pg.fail_next = False, 12
    sup.check()
    attempts = []
    while pg.fail_next:
        before = pg.fail_next
        clock.now += 0.25
        sup.check()
        if pg.fail_next < before:
            attempts.append(clock.now)
    pauses = [b - a for a, b in itertools.pairwise(attempts)]
    assert pauses[0] == pytest.approx(2 * FIRST_RETRY_S, abs=0.25)
    assert pauses[1] == pytest.approx(4 * FIRST_RETRY_S, abs=0.25)
    assert max(pauses) == pytest.approx(MAX_RETRY_S, abs=0.25)
    assert pauses == sorted(pauses)


def test_a_crash_loop_pauses_longer_and_a_stable_server_starts_over() -> None:
    clock, pg, _, sup, _ = setup()

    def die_and_time_the_restart() -> float:
        pg.up = False
        sup.check()
        waited = 0.0
        while not pg.up:
            clock.now += 0.25
            waited += 0.25
            sup.check()
        return waited

    first = die_and_time_the_restart()
    clock.now += 1.0
    second = die_and_time_the_restart()  # dead again a second after its restart
    assert second > first
    clock.now += STABLE_S + 1
    sup.check()
    assert die_and_time_the_restart() == pytest.approx(first, abs=0.25)


def test_a_stopped_supervisor_restarts_nothing() -> None:
    clock, pg, _, sup, _ = setup()
    sup.stop()
    pg.up = False
    clock.now += 100
    sup.check()
    assert pg.restarts == 0
