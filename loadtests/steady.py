"""Steady mix, no stage table: ``-u`` users spawned at ``-r`` per second for ``-t``.

The capacity report runs this at stepped user counts (``python -m loadtests.capacity``); it
is also the quickest way to put a fixed load on the stack by hand. The mix is a match in
progress: browsers, buyers, abandoners and a few bots on the limited drop.

    locust -f loadtests/steady.py --headless -u 20 -r 5 -t 60s --host http://127.0.0.1:8000 \\
        --csv loadtests/out/steady --html loadtests/out/steady.html
    locust -f loadtests/steady.py --web-host 127.0.0.1 --host http://127.0.0.1:8000
    locust -f loadtests/steady.py --master --master-bind-host 127.0.0.1 --headless \\
        -u 200 -r 20 -t 5m --expect-workers 2 --host http://127.0.0.1:8000
    locust -f loadtests/steady.py --worker --master-host 127.0.0.1

Start the stack with MATCHDAY_RATE_LIMIT_PER_S=100000 MATCHDAY_RATE_LIMIT_BURST=100000.
Environment: the MATCHDAY_LT_* variables of loadtests/config.py (the stage-table ones do not
apply here).
"""

from __future__ import annotations

from loadtests import personas


class Browser(personas.Browser):
    weight = 6


class Buyer(personas.Buyer):
    weight = 3


class Abandoner(personas.Abandoner):
    weight = 2


class Bot(personas.Bot):
    weight = 1
