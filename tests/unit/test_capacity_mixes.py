"""The planner's view of the Locust scenarios matches the scenarios themselves.

The persona models in ``loadtests/mixes.py`` are checked against the real persona code: it runs
in a subprocess (importing Locust gevent-patches the process) against a recording client, many
iterations each, in stock and sold out. Weights and stage tables are read from each
locustfile's source and checked against what the file says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests import mixes, stages
from matchday.capacity import classes as k
from matchday.capacity.demand import IN_STOCK, SOLD_OUT
from matchday.capacity.profile import PlanInputError

ROOT = Path(__file__).resolve().parents[2]

# Runs each persona's task code against a fake API that records the class of every call.
RECORDER = r"""
import json, random, sys
from loadtests import personas
from loadtests.client import Answer

HOT = "HOT"
calls = {}

class Api:
    def __init__(self, sold_out): self.sold_out = sold_out
    def _n(self, c): calls[c] = calls.get(c, 0) + 1
    def session(self): self._n("session"); return ("customer", "token")
    def cart(self, token): self._n("cart"); return "cart"
    def add(self, token, customer, cart, sku, qty=1):
        if sku == HOT and self.sold_out:
            self._n("add_sold_out"); return Answer(409, {})
        self._n("add_to_cart"); return Answer(201, {})
    def set_qty(self, *a): self._n("add_to_cart"); return Answer(200, {})
    def remove(self, *a): self._n("add_to_cart"); return Answer(200, {})
    def view_cart(self, *a): self._n("cart_view"); return Answer(200, {})
    def checkout(self, *a): self._n("checkout"); return Answer(201, {})
    def list_products(self, **kw): self._n("browse"); return Answer(200, {})
    def best_sellers(self): self._n("browse"); return Answer(200, {})
    def product(self, slug): self._n("product"); return Answer(200, {})
    def availability(self, skus): self._n("availability"); return Answer(200, {})

class Fake:
    def __init__(self, sold_out, limited_share=0.1):
        self.api, self.limited_share = Api(sold_out), limited_share
    def catalog(self): return {"slugs": ["a", "b"], "skus": ["R1", "R2", "R3"]}
    def payment_token(self): return "pm_card_visa"

personas.CFG = personas.CFG.__class__(hot_sku=HOT)
personas.RNG.seed(7)
N = 20000
out = {}
for sold_out in (False, True):
    state = "sold_out" if sold_out else "in_stock"
    for name, run in (
        ("Browser", lambda f: personas.RNG.choice(personas.Browser.tasks)(f)),
        ("Buyer", lambda f: personas.Buyer.buy(f)),
        ("Buyer80", lambda f: personas.Buyer.buy(f)),
        ("Abandoner", lambda f: personas.Abandoner.fill_and_leave(f)),
        ("Bot", lambda f: personas.Bot.grab(f)),
    ):
        calls.clear()
        fake = Fake(sold_out, 0.8 if name == "Buyer80" else 0.1)
        for _ in range(N):
            run(fake)
        out[f"{name}/{state}"] = {c: n / N for c, n in calls.items()}
waits = {}
for name in ("Browser", "Buyer", "Abandoner", "Bot"):
    cls = getattr(personas, name)
    samples = [cls.wait_time(None) for _ in range(4000)]
    waits[name] = [min(samples), max(samples)]
print(json.dumps({"counts": out, "waits": waits}))
"""


@pytest.fixture(scope="module")
def recorded() -> dict[str, dict[str, object]]:
    env = {**os.environ, "MATCHDAY_LT_THINK_SCALE": "1", "MATCHDAY_LT_ACK_DIR": "/nonexistent"}
    done = subprocess.run(
        [sys.executable, "-c", RECORDER], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("Browser", mixes.BROWSER),
        ("Buyer", mixes.buyer(0.1)),
        ("Buyer80", mixes.buyer(0.8)),
        ("Abandoner", mixes.ABANDONER),
        ("Bot", mixes.BOT),
    ],
)
def test_each_persona_model_matches_what_its_code_requests(
    recorded: dict[str, dict[str, object]], name: str, model: object
) -> None:
    from matchday.capacity.demand import Persona

    assert isinstance(model, Persona)
    for state, expected in ((IN_STOCK, model.in_stock), (SOLD_OUT, model.sold_out)):
        got = recorded["counts"][f"{name}/{state}"]
        assert isinstance(got, dict)
        assert set(got) == {c for c, n in expected.items() if n > 0}, (state, got)
        for c, n in expected.items():
            # 20,000 iterations of coin flips at 0.3 or 0.5: well within 0.02.
            assert got.get(c, 0.0) == pytest.approx(n, abs=0.02), (state, c)


@pytest.mark.parametrize("name", ["Browser", "Buyer", "Abandoner", "Bot"])
def test_each_persona_thinks_within_the_bounds_of_its_model(
    recorded: dict[str, dict[str, object]], name: str
) -> None:
    low, high = recorded["waits"][name]  # type: ignore[misc]
    model = {"Browser": mixes.BROWSER, "Buyer": mixes.buyer(0.1),
             "Abandoner": mixes.ABANDONER, "Bot": mixes.BOT}[name]  # fmt: skip
    assert model.wait_s[0] <= low < model.wait_s[0] + 0.05 * model.wait_s[1]
    assert model.wait_s[1] - 0.05 * model.wait_s[1] < high <= model.wait_s[1]


@pytest.mark.parametrize(
    ("scenario", "weights", "limited", "table", "fixed"),
    [
        ("steady", {"Browser": 6, "Buyer": 3, "Abandoner": 2, "Bot": 1}, 0.1, (), 0),
        ("kickoff", {"Browser": 6, "Buyer": 3, "Abandoner": 2, "Bot": 1}, 0.1, stages.KICK_OFF, 1),
        ("goal", {"Browser": 3, "Buyer": 4, "Abandoner": 2}, 0.1, stages.GOAL, 0),
        ("flash_sale", {"Browser": 2, "Buyer": 4, "Bot": 4}, 0.8, stages.FINAL_WHISTLE, 1),
        ("matchday", {"Browser": 6, "Buyer": 3, "Abandoner": 2, "Bot": 2}, 0.2, stages.MATCH_DAY,
         1),
        ("prematch", None, None, stages.PRE_MATCH, None),
    ],
)  # fmt: skip
def test_a_scenario_is_read_from_its_locustfile(
    scenario: str,
    weights: dict[str, float] | None,
    limited: float | None,
    table: tuple[stages.Stage, ...],
    fixed: int | None,
) -> None:
    mix = mixes.load_mix(scenario)
    assert mix.stages == table
    if weights is not None:
        assert dict(mix.weights) == weights
        assert mix.fixed_users == fixed
        assert mix.personas["Buyer"].hot_adds[0] == limited


def test_an_unknown_scenario_is_refused_with_the_names_there_are() -> None:
    with pytest.raises(PlanInputError, match=r"no scenario 'final'.*flash_sale"):
        mixes.load_mix("final")


def test_every_class_a_persona_makes_is_a_known_class() -> None:
    for p in (mixes.BROWSER, mixes.ABANDONER, mixes.BOT, mixes.buyer(0.5)):
        assert set(p.in_stock) | set(p.sold_out) <= set(k.CLASSES)
