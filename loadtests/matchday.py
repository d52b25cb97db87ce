"""The whole match day compressed into eleven minutes: build-up, kick-off, a goal, the
half-time lull and the final-whistle flash sale, with every persona.

The default scenario of ``make loadtest`` (with MATCHDAY_LT_TIME_SCALE to shorten it).

Usage (rate limits off, headless or web UI, distributed, then the audit; the environment):
loadtests/README.md, with ``-f loadtests/matchday.py``.
"""

from __future__ import annotations

from loadtests import personas
from loadtests.shapes import MATCH_DAY, StagesShape


class Browser(personas.Browser):
    weight = 6


class Buyer(personas.Buyer):
    weight = 3
    limited_share = 0.2


class Abandoner(personas.Abandoner):
    weight = 2


class Bot(personas.Bot):
    weight = 2


class Admin(personas.Admin):
    pass  # fixed_count = 1 (see personas.Admin)


class MatchDay(StagesShape):
    stages = MATCH_DAY
