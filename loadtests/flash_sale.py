"""Final-whistle flash sale of the limited jersey: 5% -> 100% of the peak in ten seconds.

Bots with fresh identities hammer JERSEY-FINAL-LTD-M two at a time; fans try to buy one;
an admin restocks it during the rush. The audit afterwards must find it sold no more than
it received, each order charged once, and every acknowledged hold in PostgreSQL.

Run against ``matchday run`` started with MATCHDAY_RATE_LIMIT_PER_S=100000
MATCHDAY_RATE_LIMIT_BURST=100000 (one load machine is one client address to the limiter):

    # headless, CSV + HTML
    locust -f loadtests/flash_sale.py --headless --host http://127.0.0.1:8000 \
        --csv loadtests/out/flash_sale --html loadtests/out/flash_sale.html
    # web UI on http://127.0.0.1:8089
    locust -f loadtests/flash_sale.py --web-host 127.0.0.1 --host http://127.0.0.1:8000
    # distributed: one master, N workers (same command on each load machine)
    locust -f loadtests/flash_sale.py --master --master-bind-host 127.0.0.1 --headless \
        --expect-workers 2 --host http://127.0.0.1:8000 --csv loadtests/out/flash_sale
    locust -f loadtests/flash_sale.py --worker --master-host 127.0.0.1
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
