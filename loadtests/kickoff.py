"""Kick-off spike: 50x the baseline in one minute (2% -> 100% of the peak), held three minutes.

The crowd arrives on the app at once: browsers, buyers, abandoners, the first bots
probing the limited drop, and an admin restocking it mid-surge.

Run against ``matchday run`` started with MATCHDAY_RATE_LIMIT_PER_S=100000
MATCHDAY_RATE_LIMIT_BURST=100000 (one load machine is one client address to the limiter):

    # headless, CSV + HTML
    locust -f loadtests/kickoff.py --headless --host http://127.0.0.1:8000 \
        --csv loadtests/out/kickoff --html loadtests/out/kickoff.html
    # web UI on http://127.0.0.1:8089
    locust -f loadtests/kickoff.py --web-host 127.0.0.1 --host http://127.0.0.1:8000
    # distributed: one master, N workers (same command on each load machine)
    locust -f loadtests/kickoff.py --master --master-bind-host 127.0.0.1 --headless \
        --expect-workers 2 --host http://127.0.0.1:8000 --csv loadtests/out/kickoff
    locust -f loadtests/kickoff.py --worker --master-host 127.0.0.1
    # then
    python -m loadtests.audit --acks loadtests/out/acks

Environment (all in loadtests/config.py): MATCHDAY_LT_PEAK_USERS (100), MATCHDAY_LT_TIME_SCALE
(1.0), MATCHDAY_LT_SHAPE=off, MATCHDAY_LT_THINK_SCALE, MATCHDAY_LT_HOT_SKU
(JERSEY-FINAL-LTD-M), MATCHDAY_LT_SKUS, MATCHDAY_LT_SLUGS, MATCHDAY_LT_DECLINE_RATE,
MATCHDAY_LT_ACK_DIR (loadtests/out/acks), MATCHDAY_LT_ADMIN_KEY / MATCHDAY_LT_ADMIN_TOTP,
MATCHDAY_LT_RESTOCK_QTY, MATCHDAY_LT_RESTOCK_EVERY_S, MATCHDAY_LT_ALLOW_REMOTE.
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
