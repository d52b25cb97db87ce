"""Match-day stage tables as plain data: no Locust import, so the capacity planner can read
them in a process that must not be gevent-patched (``loadtests/shapes.py`` plays them in
Locust; ``matchday capacity plan`` turns them into demand, ADR 0023).

A stage runs until ``until_s`` seconds after the start, at ``users`` x the peak users,
reached within ``ramp_s`` seconds of the stage starting.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    until_s: float
    users: float  # a fraction of the peak
    ramp_s: float = 10.0


# Pre-match build-up: the hour before kick-off, fans browse and buy their team's shirt.
PRE_MATCH = (
    Stage(120, 0.05, 60),
    Stage(300, 0.10, 120),
    Stage(480, 0.20, 120),
    Stage(600, 0.30, 60),
)
# Kick-off: 50x the baseline in a minute (2% -> 100%), held, then settling into the match.
KICK_OFF = (
    Stage(60, 0.02, 10),
    Stage(120, 1.00, 60),
    Stage(300, 1.00, 1),
    Stage(360, 0.20, 30),
)
# A goal: everyone reaches for the scorer's shirt within ten seconds, then it decays.
GOAL = (
    Stage(60, 0.20, 10),
    Stage(90, 0.80, 10),
    Stage(150, 0.80, 1),
    Stage(240, 0.30, 60),
)
# The final whistle: the limited jersey goes on sale and the whole crowd arrives at once.
FINAL_WHISTLE = (
    Stage(30, 0.05, 10),
    Stage(40, 1.00, 10),
    Stage(160, 1.00, 1),
    Stage(220, 0.10, 30),
)
# The whole day, compressed: build-up, kick-off, a goal, half-time lull, the flash sale.
MATCH_DAY = (
    Stage(120, 0.05, 60),
    Stage(180, 1.00, 60),
    Stage(300, 0.50, 60),
    Stage(330, 0.90, 10),
    Stage(420, 0.40, 60),
    Stage(480, 0.10, 30),
    Stage(540, 1.00, 10),
    Stage(660, 0.05, 60),
)


def users_at(
    stages: tuple[Stage, ...], t: float, peak: int, scale: float
) -> tuple[int, float] | None:
    """(users, spawn rate per second) at ``t`` seconds into the run; None once it is over."""
    before = 0
    for stage in stages:
        users = max(1, round(stage.users * peak))
        if t < stage.until_s * scale:
            ramp = max(stage.ramp_s * scale, 0.1)
            return users, max(1.0, abs(users - before) / ramp)
        before = users
    return None
