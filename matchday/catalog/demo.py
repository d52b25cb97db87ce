"""The demo catalogue: one product per kit, boot model and ball, over ``demo_stock()``'s SKUs.

Seeding assumes the inventory rows exist (the stack seeds ``demo_stock()`` first) and never
changes what is there, so it is safe on every start and beside a merchandiser's edits.
"""

from __future__ import annotations

from matchday.catalog.models import CategoryIn, ProductIn, VariantIn
from matchday.catalog.ports import CatalogStore
from matchday.demo import BOOT_SIZES, SHIRT_SIZES, TEAMS, demo_stock

DEMO_CATEGORIES = (
    CategoryIn(slug="jerseys", name="Jerseys", position=1),
    CategoryIn(slug="boots", name="Boots", position=2),
    CategoryIn(slug="balls", name="Balls", position=3),
)

# team code -> (name, home colour, away colour)
_TEAMS = {
    "ARG": ("Argentina", "Sky blue/white", "Navy"),
    "BRA": ("Brazil", "Yellow", "Blue"),
    "FRA": ("France", "Navy", "White"),
    "GER": ("Germany", "White", "Black"),
    "ESP": ("Spain", "Red", "Navy"),
    "ENG": ("England", "White", "Red"),
    "POR": ("Portugal", "Red", "White"),
    "NED": ("Netherlands", "Orange", "Navy"),
}
_BOOTS = {
    "STRIKER": ("Striker Elite Firm-Ground Boots", "Volt/black", 17999, "Lightweight boots"),
    "KEEPER": ("Keeper Pro Boots", "White/blue", 15999, "Grippy, cushioned boots"),
}


def _image(slug: str) -> str:
    return f"/static/img/{slug}.svg"


def demo_products() -> list[ProductIn]:
    stock = {row.sku: row for row in demo_stock()}
    limit = {sku: row.per_customer_limit for sku, row in stock.items()}

    def variants(skus_sizes: list[tuple[str, str]], colour: str) -> list[VariantIn]:
        return [
            VariantIn(
                sku=sku, size=size, colour=colour, position=i, initial_stock=stock[sku].on_hand
            )
            for i, (sku, size) in enumerate(skus_sizes)
        ]

    products: list[ProductIn] = []
    for rank, code in enumerate(TEAMS):
        team, home, away = _TEAMS[code]
        for kit, colour in (("HOME", home), ("AWAY", away)):
            slug = f"jersey-{code.lower()}-{kit.lower()}"
            skus = [(f"JERSEY-{code}-{kit}-{size}", size) for size in SHIRT_SIZES]
            products.append(
                ProductIn(
                    slug=slug,
                    name=f"{team} {kit.title()} Jersey 2026",
                    description=(
                        f"The {team} {kit.lower()} shirt for the 2026 World Cup: breathable"
                        " recycled polyester, embroidered crest, regular fit."
                    ),
                    category="jerseys",
                    team=team,
                    tags=["world-cup-2026", kit.lower()],
                    price_cents=8999,
                    image_url=_image(slug),
                    featured_rank=10 + 2 * rank + (kit == "AWAY"),
                    per_customer_limit=limit[skus[0][0]],
                    variants=variants(skus, colour),
                )
            )
    final = [(f"JERSEY-FINAL-LTD-{size}", size) for size in SHIRT_SIZES]
    products.append(
        ProductIn(
            slug="jersey-final-ltd",
            name="World Cup Final 2026 Limited Jersey",
            description=(
                "Numbered edition released at the final whistle: gold-foil crest, match date"
                " woven into the collar. Two per fan."
            ),
            category="jerseys",
            tags=["world-cup-2026", "limited", "final"],
            price_cents=14999,
            image_url=_image("jersey-final-ltd"),
            featured_rank=0,
            per_customer_limit=limit[final[0][0]],
            variants=variants(final, "Gold/black"),
        )
    )
    for model, (name, colour, price, blurb) in _BOOTS.items():
        slug = f"boots-{model.lower()}"
        products.append(
            ProductIn(
                slug=slug,
                name=name,
                description=f"{blurb} for natural grass. EU sizes 38-46.",
                category="boots",
                tags=["firm-ground"],
                price_cents=price,
                image_url=_image(slug),
                featured_rank=100,
                variants=variants([(f"BOOTS-{model}-{s}", s) for s in BOOT_SIZES], colour),
            )
        )
    products.append(
        ProductIn(
            slug="ball-match-5",
            name="Official Match Ball 2026",
            description="The ball of the tournament: thermally bonded panels, FIFA Quality Pro.",
            category="balls",
            tags=["world-cup-2026"],
            price_cents=14999,
            image_url=_image("ball-match-5"),
            featured_rank=50,
            variants=variants([("BALL-MATCH-5", "5")], "White/gold"),
        )
    )
    training = variants([("BALL-TRAINING-5", "5"), ("BALL-TRAINING-4", "4")], "White/blue")
    # Size 4 (youth) is a little cheaper: the one variant with its own price.
    training[1] = training[1].model_copy(update={"price_cents": 2499})
    products.append(
        ProductIn(
            slug="ball-training",
            name="Training Ball",
            description="Machine-stitched, durable training ball. Size 5, or size 4 for youth.",
            category="balls",
            tags=["training"],
            price_cents=2999,
            image_url=_image("ball-training"),
            featured_rank=200,
            variants=training,
        )
    )
    return products


async def seed_catalog(store: CatalogStore) -> int:
    """Insert the demo categories and products that are missing; return products inserted.

    Does not touch the catalogue cache: on a fresh start it is empty, and otherwise entries
    cached before the seed expire within the cache TTL (``CatalogService.seed`` invalidates).
    """
    return await store.seed_products(DEMO_CATEGORIES, demo_products())
