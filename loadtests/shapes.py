"""Match-day load shapes as stage tables, after Locust's examples/custom_shape/stages.py.

A stage runs until ``until_s`` seconds after the start, at ``users`` x MATCHDAY_LT_PEAK_USERS
users, reached within ``ramp_s`` seconds of the stage starting. MATCHDAY_LT_TIME_SCALE
stretches or compresses every time (0.1 plays a 10-minute table in one minute);
MATCHDAY_LT_SHAPE=off ignores the table and holds ``-u`` users at ``-r`` per second until
``-t`` (how the capacity report runs each step steady).
"""

from __future__ import annotations

from typing import Any, ClassVar

from locust import LoadTestShape

from loadtests.config import LoadConfig
from loadtests.stages import (  # noqa: F401 - the tables live there, locust-free
    FINAL_WHISTLE,
    GOAL,
    KICK_OFF,
    MATCH_DAY,
    PRE_MATCH,
    Stage,
    users_at,
)


class StagesShape(LoadTestShape):
    abstract = True
    stages: ClassVar[tuple[Stage, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self.cfg = LoadConfig.from_env()

    def tick(self) -> tuple[int, float] | None:
        if self.cfg.shape_off:
            assert self.runner is not None
            opts: Any = self.runner.environment.parsed_options  # set in every CLI run
            # Locust ignores --run-time when a shape is present: honour it here.
            if opts.run_time and self.get_run_time() >= opts.run_time:
                return None
            return int(opts.num_users or 1), float(opts.spawn_rate or 1)
        return users_at(self.stages, self.get_run_time(), self.cfg.peak_users, self.cfg.time_scale)

    @classmethod
    def duration_s(cls) -> float:
        scale = LoadConfig.from_env().time_scale
        return cls.stages[-1].until_s * scale if cls.stages else 0.0
