"""Who shows up on match day. Abstract Locust users; each scenario subclasses the ones it
needs and gives them weights (Locust only runs classes defined in the locustfile itself).

- Browser: catalogue pages, product pages, best-sellers, live availability. Never holds.
- Buyer: a new fan per journey: session, cart, one or two items, pays (a share declined).
  ``limited_share`` of journeys go for the limited drop instead of a regular SKU.
- Abandoner: fills a cart, changes a quantity, drops a line, walks away; the holds expire by
  themselves (that is the engine's job, and the audit checks it did).
- Bot: hammers the one limited SKU with fresh identities (dodging the per-fan limit), two
  units at a time, checks out whatever it gets, almost no pause.
- Admin: logs in with API key + TOTP and restocks the limited SKU every few seconds while
  the surge runs (``fixed_count`` 1: one admin key admits one login per 30-s TOTP step).

Configuration: see ``loadtests.config`` (MATCHDAY_LT_* variables).
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, ClassVar

import gevent
import gevent.lock
from locust import FastHttpUser, between, constant, events, task
from locust.exception import StopUser

from loadtests.acks import AckJournal
from loadtests.client import ShopApi
from loadtests.config import LoadConfig, check_target

log = logging.getLogger(__name__)

CFG = LoadConfig.from_env()
RNG = random.Random()  # noqa: S311 - picks a traffic mix, not a secret
ACKS = AckJournal(CFG.ack_dir)
CATEGORIES = (None, "jerseys", "boots", "balls")
SIZES = (None, "S", "M", "L", "XL")
# Used when the catalogue cannot be read at start (e.g. no products seeded): the demo's.
FALLBACK_SKUS = ["BALL-MATCH-5", "BALL-TRAINING-5", "BOOTS-STRIKER-42", "JERSEY-BRA-HOME-M"]

_catalog: dict[str, list[str]] = {}
_catalog_lock = gevent.lock.Semaphore()


@events.init.add_listener
def _refuse_remote_targets(environment: Any, **_: Any) -> None:
    # Before any user starts; the web UI's host field is checked again in Fan.on_start.
    why = check_target(environment.host or CFG.host, CFG)
    if why and not _is_worker(environment):
        raise SystemExit(why)


@events.quitting.add_listener
def _close_acks(environment: Any, **_: Any) -> None:
    if ACKS.count:
        log.info("%d acknowledgements journaled to %s", ACKS.count, ACKS.path)
    ACKS.close()


def _is_worker(environment: Any) -> bool:
    return type(environment.runner).__name__ == "WorkerRunner"


def think(low: float, high: float) -> Any:
    return between(low * CFG.think_scale, high * CFG.think_scale)


class Fan(FastHttpUser):
    """Shared by every persona: the API client, the catalogue it picks from."""

    abstract = True
    host = CFG.host
    # Past this a fan gives up on a page; the answer counts as a failure (status 0).
    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        why = check_target(self.host, CFG)
        if why:
            log.error(why)
            raise StopUser()
        self.api = ShopApi(self.client, CFG, ACKS)

    def catalog(self) -> dict[str, list[str]]:
        """Slugs and SKUs, read once per process from the catalogue (or MATCHDAY_LT_*)."""
        with _catalog_lock:
            if not _catalog:
                slugs, skus = list(CFG.slugs), list(CFG.skus)
                if not (slugs and skus):
                    found = self.api.list_products(limit=100)
                    items = found.body.get("items", []) if found.ok else []
                    slugs = slugs or [p["slug"] for p in items]
                    skus = skus or [
                        v["sku"] for p in items for v in p["variants"] if v["sku"] != CFG.hot_sku
                    ]
                _catalog["slugs"] = slugs
                _catalog["skus"] = skus or FALLBACK_SKUS
        return _catalog

    def payment_token(self) -> str:
        return "pm_card_chargeDeclined" if RNG.random() < CFG.decline_rate else "pm_card_visa"


class Browser(Fan):
    abstract = True
    wait_time = think(1.0, 4.0)

    @task(5)
    def listing(self) -> None:
        params = {"limit": 24}
        category, size = RNG.choice(CATEGORIES), RNG.choice(SIZES)
        if category:
            params["category"] = category  # type: ignore[assignment]
        if size and category != "balls":
            params["size"] = size  # type: ignore[assignment]
        self.api.list_products(**params)

    @task(4)
    def product_page(self) -> None:
        slugs = self.catalog()["slugs"]
        if slugs:
            self.api.product(RNG.choice(slugs))

    @task(1)
    def best_sellers(self) -> None:
        self.api.best_sellers()

    @task(2)
    def watch_the_drop(self) -> None:
        # Fans refresh the limited jersey's availability during the match.
        self.api.availability([CFG.hot_sku])


class Buyer(Fan):
    abstract = True
    wait_time = think(2.0, 6.0)
    limited_share: ClassVar[float] = 0.1

    @task
    def buy(self) -> None:
        fan = self.api.session()
        if fan is None:
            return
        customer, token = fan
        cart = self.api.cart(token)
        if cart is None:
            return
        limited = RNG.random() < self.limited_share
        sku = CFG.hot_sku if limited else RNG.choice(self.catalog()["skus"])
        if not self.api.add(token, customer, cart, sku, 1).ok:
            return
        if not limited and RNG.random() < 0.3:
            self.api.add(token, customer, cart, RNG.choice(self.catalog()["skus"]), 1)
        self.api.view_cart(token, cart)
        self.api.checkout(token, customer, cart, self.payment_token())


class Abandoner(Fan):
    abstract = True
    wait_time = think(2.0, 6.0)

    @task
    def fill_and_leave(self) -> None:
        fan = self.api.session()
        if fan is None:
            return
        customer, token = fan
        cart = self.api.cart(token)
        if cart is None:
            return
        skus = RNG.sample(self.catalog()["skus"], k=min(2, len(self.catalog()["skus"])))
        added = [s for s in skus if self.api.add(token, customer, cart, s, 1).ok]
        if added and RNG.random() < 0.5:
            self.api.set_qty(token, cart, added[0], 2)
        if len(added) > 1 and RNG.random() < 0.5:
            self.api.remove(token, cart, added[1])
        self.api.view_cart(token, cart)
        # ...and never checks out: the holds must expire on their own.


class Bot(Fan):
    abstract = True
    wait_time = think(0.05, 0.2)

    @task
    def grab(self) -> None:
        fan = self.api.session()
        if fan is None:
            return
        customer, token = fan
        cart = self.api.cart(token)
        if cart is None:
            return
        if self.api.add(token, customer, cart, CFG.hot_sku, 2).ok:
            self.api.checkout(token, customer, cart, "pm_card_visa")


class Admin(Fan):
    abstract = True
    fixed_count = 1
    # Restocks follow the match's clock, so they compress with the stage table.
    wait_time = constant(max(1.0, CFG.restock_every_s * CFG.time_scale))

    def on_start(self) -> None:
        super().on_start()
        if not (CFG.admin_key and CFG.admin_totp):
            log.warning("no MATCHDAY_LT_ADMIN_KEY/_TOTP: the admin persona stays idle")
            raise StopUser()
        self.session: str | None = None

    def login(self) -> str | None:
        import pyotp

        totp = pyotp.TOTP(CFG.admin_totp)
        for _ in range(3):
            session = self.api.admin_login(CFG.admin_key, totp.now())
            if session:
                return session
            # Most likely the code of this 30-s step was spent (by us, or another process
            # sharing the key): the next step's code is fresh.
            gevent.sleep(30.5 - time.time() % 30)
        return None

    @task
    def restock_the_drop(self) -> None:
        if self.session is None:
            self.session = self.login()
            if self.session is None:
                return
        a = self.api.restock(self.session, CFG.hot_sku, CFG.restock_qty)
        if a.status == 401:  # the ~15-minute session ran out
            self.session = None
