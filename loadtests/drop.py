"""A drop with the waiting room on and off, in one run (issue 16, ADR 0026).

Two SKUs with the same stock: ``MATCHDAY_LT_QUEUED_SKU`` is in the open drop
``MATCHDAY_LT_DROP_ID``; ``MATCHDAY_LT_OPEN_SKU`` is in no drop. Fans and bots go for each.

- Fan: one identity; queued, it solves the proof of work, joins, follows its status over
  server-sent events as the queue page does (polling every second, the page's fallback, if
  the stream breaks), claims its pass, adds one and pays; open, it adds one (retrying a 503
  after Retry-After, as the app does) and pays. One journey each.
- Bot: a fresh identity per attempt, all from this one address, no proof of work, polling
  every 0.25 s; it buys two units whenever it gets in, and never stops.

Every fan's journey and every bot's purchase is one JSON line in
``MATCHDAY_LT_DROP_JOURNAL`` (default loadtests/out/drop): persona, side, customer, when it
joined and was admitted, units bought. Run against ``matchday run`` started with
MATCHDAY_RATE_LIMIT_PER_S=100000 MATCHDAY_RATE_LIMIT_BURST=100000, then:

    locust -f loadtests/drop.py --headless --host http://127.0.0.1:8000 -u 160 -r 20 \\
        -t 90s --csv loadtests/out/drop
    python -m loadtests.drop_report loadtests/out/drop loadtests/out/drop_stats.csv
    python -m loadtests.audit --acks loadtests/out/acks
(with a fresh stack, clear loadtests/out/acks or set MATCHDAY_LT_ACK_DIR first: the audit
reads every acks file there, and an earlier run's name reservations this stack never had)
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import gevent
from locust import constant, task
from locust.exception import StopUser

from loadtests import personas
from loadtests.client import new_key
from loadtests.pow import solve

DROP_ID = os.environ.get("MATCHDAY_LT_DROP_ID", "")
QUEUED_SKU = os.environ.get("MATCHDAY_LT_QUEUED_SKU", "JERSEY-FINAL-LTD-M")
OPEN_SKU = os.environ.get("MATCHDAY_LT_OPEN_SKU", "JERSEY-FINAL-LTD-L")
# A poll past the ticket's budget, answered 429 by the ingress (ADR 0026): by design, and
# reported apart from the queue's requests.
THROTTLED = "throttled: queue status"
JOURNAL = Path(os.environ.get("MATCHDAY_LT_DROP_JOURNAL", "loadtests/out/drop"))
GIVE_UP_S = 120.0  # a fan waits this long in the queue at most
FINAL = ("admitted", "closed", "expired")
log = logging.getLogger(__name__)


def record(**entry: Any) -> None:
    JOURNAL.mkdir(parents=True, exist_ok=True)
    with open(JOURNAL / f"journal-{os.getpid()}.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


class Shopper(personas.Fan):
    abstract = True
    side = "open"
    sse = True  # the queue page's live status; polling is its fallback
    poll_s = 1.0
    pow_ok = True
    units = 1

    def identity(self) -> tuple[str, str] | None:
        return self.api.session()

    def enter(self, token: str) -> tuple[float | None, dict[str, str]]:
        """Through the queue: (admitted at, the pass header), or (None, {}) if never."""
        body: dict[str, str] = {}
        if self.pow_ok:
            c = self.api.call("POST", f"/api/shop/drops/{DROP_ID}/challenge",
                              name="queue: challenge", token=token, key=new_key())  # fmt: skip
            if not c.ok:
                return None, {}
            body = {"challenge": c.body["challenge"], "nonce": solve(c.body["challenge"],
                                                                     c.body["bits"])}  # fmt: skip
        joined = self.api.call("POST", f"/api/shop/drops/{DROP_ID}/tickets", name="queue: join",
                               json=body, token=token, key=new_key())  # fmt: skip
        if joined.status != 201:
            return None, {}
        ticket, deadline = joined.body["ticket"], time.time() + GIVE_UP_S
        state = joined.body["state"]
        if self.sse and state not in FINAL:
            state = self.follow(ticket, state, deadline)
        while state not in FINAL and time.time() < deadline:
            gevent.sleep(self.poll_s)
            a = self.api.call("GET", f"/api/shop/drops/{DROP_ID}/status", name="queue: status",
                              params={"ticket": ticket}, throttled=THROTTLED)  # fmt: skip
            state = a.body.get("state", state) if isinstance(a.body, dict) else state
        if state != "admitted":
            return None, {}
        admitted = time.time()
        p = self.api.call("POST", f"/api/shop/drops/{DROP_ID}/pass", name="queue: pass",
                          json={"ticket": ticket}, token=token, key=new_key())  # fmt: skip
        return (admitted, {"X-Matchday-Pass": p.body["pass"]}) if p.ok else (None, {})

    def follow(self, ticket: str, state: str, deadline: float) -> str:
        """The queue page's live status (server-sent events) until a final state; the last
        state seen, from which polling carries on if the stream ended without one."""
        try:
            for line in self.client.iter_lines(f"/api/shop/drops/{DROP_ID}/events",
                                               params={"ticket": ticket},
                                               name="queue: events"):  # fmt: skip
                if line.startswith("data: "):
                    state = json.loads(line[6:]).get("state", state)
                if state in FINAL or time.time() >= deadline:
                    break
        except Exception as exc:  # a broken stream: the page falls back to polling
            log.info("event stream ended: %s", exc)
        return state

    def journey(self) -> None:
        fan = self.identity()
        if fan is None:
            return
        customer, token = fan
        started, admitted, passes = time.time(), None, {}
        sku = QUEUED_SKU if self.side == "queued" else OPEN_SKU
        if self.side == "queued":
            admitted, passes = self.enter(token)
            if admitted is None:
                record(persona=self.persona, side=self.side, customer=customer, joined=started,
                       admitted=None, units=0)  # fmt: skip
                return
        bought = self.buy(token, customer, sku, passes)
        record(persona=self.persona, side=self.side, customer=customer, joined=started,
               admitted=admitted, units=bought)  # fmt: skip

    def buy(self, token: str, customer: str, sku: str, passes: dict[str, str]) -> int:
        prefix = "admitted: " if self.side == "queued" else "open: "
        cart = self.api.cart(token)
        if cart is None:
            return 0
        a = self.api.call("POST", f"/api/shop/carts/{cart}/items", name=prefix + "add",
                          json={"sku": sku, "qty": self.units}, token=token, key=new_key(),
                          extra=passes)  # fmt: skip
        if a.status != 201:
            return 0
        self.api.acks.add(a.body, cart, customer)
        o = self.api.call("POST", "/api/orders/", name=prefix + "checkout", token=token,
                          key=new_key(), json={"cart_id": cart, "payment_token": "pm_card_visa"},
                          extra=passes)  # fmt: skip
        if o.status == 201 and o.body.get("status") == "paid":
            self.api.acks.order(o.body, customer)
            return self.units
        return 0


class QueuedFan(Shopper):
    weight = 3
    side, persona = "queued", "fan"
    wait_time = constant(0)

    @task
    def once(self) -> None:
        self.journey()
        raise StopUser()


class OpenFan(QueuedFan):
    side = "open"


class QueuedBot(Shopper):
    weight = 1
    side, persona = "queued", "bot"
    sse, poll_s, pow_ok, units = False, 0.25, False, 2
    wait_time = constant(0.05)

    @task
    def again(self) -> None:
        self.journey()


class OpenBot(QueuedBot):
    side = "open"
