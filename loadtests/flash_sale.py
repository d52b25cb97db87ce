"""Final-whistle flash sale of the limited jersey: 5% -> 100% of the peak in ten seconds.

Bots with fresh identities hammer JERSEY-FINAL-LTD-M two at a time; fans try to buy one;
an admin restocks it during the rush. The audit afterwards must find it sold no more than
it received, each order charged once, and every acknowledged hold in PostgreSQL.

Usage (rate limits off, headless or web UI, distributed, then the audit; the environment):
loadtests/README.md, with ``-f loadtests/flash_sale.py``.
"""

from __future__ import annotations

from loadtests import personas
from loadtests.shapes import FINAL_WHISTLE, StagesShape


class Browser(personas.Browser):
    weight = 2


class Buyer(personas.Buyer):
    weight = 4
    limited_share = 0.8


class Bot(personas.Bot):
    weight = 4


class Admin(personas.Admin):
    pass  # fixed_count = 1 (see personas.Admin)


class FinalWhistle(StagesShape):
    stages = FINAL_WHISTLE
