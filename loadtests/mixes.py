"""The Locust scenarios as the capacity planner sees them: persona loops and weights.

The personas' behaviour (``personas.py``) is written here as the average requests of one
iteration per request class (``matchday.capacity.classes``); ``tests/unit/
test_capacity_mixes.py`` runs the real persona code against a recording client and checks
these numbers. A scenario's weights, its buyers' ``limited_share`` and its stage table are
read from the locustfile's source (``ast``, never imported: importing Locust gevent-patches
the process), so a new scenario file plans without a change here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from loadtests import stages as tables
from matchday.capacity import classes as c
from matchday.capacity.demand import Mix, Persona
from matchday.capacity.profile import PlanInputError

HERE = Path(__file__).resolve().parent
SCENARIOS = ("prematch", "kickoff", "goal", "flash_sale", "matchday", "steady")
BUYER_LIMITED_SHARE = 0.1  # personas.Buyer.limited_share
SECOND_ADD = 0.3  # a buyer of a regular SKU adds a second one this often
ABANDONER_EDITS = 0.5 + 0.5  # changes a quantity half the time, drops a line half the time

BROWSER = Persona(
    name="Browser",
    wait_s=(1.0, 4.0),
    # Task weights 5 listing, 4 product page, 1 best-sellers, 2 availability of the drop.
    in_stock={c.BROWSE: 6 / 12, c.PRODUCT: 4 / 12, c.AVAILABILITY: 2 / 12},
    sold_out={c.BROWSE: 6 / 12, c.PRODUCT: 4 / 12, c.AVAILABILITY: 2 / 12},
)
ABANDONER = Persona(
    name="Abandoner",
    wait_s=(2.0, 6.0),
    # Two adds, then a quantity change and a removal (both engine mutations, counted as adds).
    in_stock={c.SESSION: 1, c.CART: 1, c.ADD: 2 + ABANDONER_EDITS, c.CART_VIEW: 1},
    sold_out={c.SESSION: 1, c.CART: 1, c.ADD: 2 + ABANDONER_EDITS, c.CART_VIEW: 1},
)
BOT = Persona(
    name="Bot",
    wait_s=(0.05, 0.2),
    in_stock={c.SESSION: 1, c.CART: 1, c.ADD: 1, c.CHECKOUT: 1},
    sold_out={c.SESSION: 1, c.CART: 1, c.ADD_SOLD_OUT: 1},
    hot_adds=(1.0, 1.0),
    hot_units=2.0,
)


def buyer(limited: float) -> Persona:
    """A buyer going for the drop with probability ``limited``; one who gets nothing leaves."""
    regular = 1 - limited
    return Persona(
        name="Buyer",
        wait_s=(2.0, 6.0),
        in_stock={
            c.SESSION: 1, c.CART: 1, c.ADD: 1 + SECOND_ADD * regular, c.CART_VIEW: 1,
            c.CHECKOUT: 1,
        },
        sold_out={
            c.SESSION: 1, c.CART: 1, c.ADD: regular * (1 + SECOND_ADD), c.ADD_SOLD_OUT: limited,
            c.CART_VIEW: regular, c.CHECKOUT: regular,
        },
        hot_adds=(limited, limited),
        hot_units=limited,
    )  # fmt: skip


def _literal(node: ast.expr) -> object:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return node.id if isinstance(node, ast.Name) else None


def _class_attrs(cls: ast.ClassDef) -> tuple[str | None, dict[str, object]]:
    """(the persona or shape it subclasses, its simple class attributes)."""
    base = None
    for b in cls.bases:
        if isinstance(b, ast.Attribute) and isinstance(b.value, ast.Name):
            base = b.attr if b.value.id == "personas" else base
        elif isinstance(b, ast.Name) and b.id == "StagesShape":
            base = "StagesShape"
    attrs: dict[str, object] = {}
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            if isinstance(target, ast.Name):
                attrs[target.id] = _literal(stmt.value)
    return base, attrs


def scenario_path(name: str) -> Path:
    if name not in SCENARIOS:
        raise PlanInputError(f"no scenario {name!r}: choose one of {', '.join(SCENARIOS)}")
    return HERE / f"{name}.py"


def load_mix(name: str) -> Mix:
    """The scenario ``loadtests/<name>.py`` as weights, personas and stage table."""
    tree = ast.parse(scenario_path(name).read_text())
    weights: dict[str, float] = {}
    personas: dict[str, Persona] = {}
    stage_table: tuple[tables.Stage, ...] = ()
    fixed = 0
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        base, attrs = _class_attrs(cls)
        if base == "StagesShape":
            stage_table = getattr(tables, str(attrs.get("stages")))
        elif base == "Admin":
            fixed += 1  # personas.Admin.fixed_count; restocks are a few requests a minute
        elif base in ("Browser", "Buyer", "Abandoner", "Bot"):
            weights[base] = float(attrs.get("weight", 1))  # type: ignore[arg-type]
            share = float(attrs.get("limited_share", BUYER_LIMITED_SHARE))  # type: ignore[arg-type]
            personas[base] = {"Browser": BROWSER, "Abandoner": ABANDONER, "Bot": BOT}.get(
                base, buyer(share)
            )
        elif base is not None:
            raise PlanInputError(f"scenario {name!r}: persona {base} has no capacity model")
    return Mix(name, weights, personas, stage_table, fixed)
