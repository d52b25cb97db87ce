"""Goal spike: 20% -> 80% of the peak in ten seconds, a minute at the top, then decay.

Everyone wants the scorer's shirt: more buyers than browsers for a minute.

Usage (rate limits off, headless or web UI, distributed, then the audit; the environment):
loadtests/README.md, with ``-f loadtests/goal.py``.
"""

from __future__ import annotations

from loadtests import personas
from loadtests.shapes import GOAL, StagesShape


class Browser(personas.Browser):
    weight = 3


class Buyer(personas.Buyer):
    weight = 4


class Abandoner(personas.Abandoner):
    weight = 2


class Goal(StagesShape):
    stages = GOAL
