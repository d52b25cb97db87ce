"""Kick-off spike: 50x the baseline in one minute (2% -> 100% of the peak), held three minutes.

The crowd arrives on the app at once: browsers, buyers, abandoners, the first bots
probing the limited drop, and an admin restocking it mid-surge.

Usage (rate limits off, headless or web UI, distributed, then the audit; the environment):
loadtests/README.md, with ``-f loadtests/kickoff.py``.
"""

from __future__ import annotations

from loadtests import personas
from loadtests.shapes import KICK_OFF, StagesShape


class Browser(personas.Browser):
    weight = 6


class Buyer(personas.Buyer):
    weight = 3


class Abandoner(personas.Abandoner):
    weight = 2


class Bot(personas.Bot):
    weight = 1


class Admin(personas.Admin):
    pass  # fixed_count = 1 (see personas.Admin)


class KickOff(StagesShape):
    stages = KICK_OFF
