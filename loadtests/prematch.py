"""Pre-match build-up: the hour before kick-off in ten minutes, 5% -> 30% of the peak.

Mostly browsers; some buyers of their team's shirt; a few abandoned carts. No bots yet.

Usage (rate limits off, headless or web UI, distributed, then the audit; the environment):
loadtests/README.md, with ``-f loadtests/prematch.py``.
"""

from __future__ import annotations

from loadtests import personas
from loadtests.shapes import PRE_MATCH, StagesShape


class Browser(personas.Browser):
    weight = 8


class Buyer(personas.Buyer):
    weight = 2


class Abandoner(personas.Abandoner):
    weight = 1


class PreMatch(StagesShape):
    stages = PRE_MATCH
