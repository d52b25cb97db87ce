"""Pre-match build-up: the hour before kick-off in ten minutes, 5% -> 30% of the peak.

Mostly browsers; some buyers of their team's shirt; a few abandoned carts. No bots yet.

Run against ``matchday run`` started with MATCHDAY_RATE_LIMIT_PER_S=100000
MATCHDAY_RATE_LIMIT_BURST=100000 (one load machine is one client address to the limiter):

    # headless, CSV + HTML
    locust -f loadtests/prematch.py --headless --host http://127.0.0.1:8000 \
        --csv loadtests/out/prematch --html loadtests/out/prematch.html
    # web UI on http://127.0.0.1:8089
    locust -f loadtests/prematch.py --web-host 127.0.0.1 --host http://127.0.0.1:8000
    # distributed: one master, N workers (same command on each load machine)
    locust -f loadtests/prematch.py --master --master-bind-host 127.0.0.1 --headless \
        --expect-workers 2 --host http://127.0.0.1:8000 --csv loadtests/out/prematch
    locust -f loadtests/prematch.py --worker --master-host 127.0.0.1
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
from loadtests.shapes import PRE_MATCH, StagesShape


class Browser(personas.Browser):
    weight = 8


class Buyer(personas.Buyer):
    weight = 2


class Abandoner(personas.Abandoner):
    weight = 1


class PreMatch(StagesShape):
    stages = PRE_MATCH
