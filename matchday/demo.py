"""The seeded demo catalogue's stock: jerseys, boots and balls in sizes."""

from __future__ import annotations

from matchday.inventory.records import SkuRow

TEAMS = ("ARG", "BRA", "FRA", "GER", "ESP", "ENG", "POR", "NED")
SHIRT_SIZES = ("XS", "S", "M", "L", "XL", "XXL")
BOOT_SIZES = tuple(str(s) for s in range(38, 47))


def demo_stock() -> list[SkuRow]:
    rows: list[SkuRow] = []
    for team in TEAMS:
        for kit in ("HOME", "AWAY"):
            for size in SHIRT_SIZES:
                rows.append(SkuRow(f"JERSEY-{team}-{kit}-{size}", 200, 0, 0, per_customer_limit=4))
    # The final-whistle drop: few units, two per fan, capped at one per order when low.
    for size in SHIRT_SIZES:
        rows.append(
            SkuRow(
                f"JERSEY-FINAL-LTD-{size}",
                50,
                0,
                0,
                per_customer_limit=2,
                low_stock_threshold=10,
                low_stock_order_cap=1,
            )
        )
    for model in ("STRIKER", "KEEPER"):
        for size in BOOT_SIZES:
            rows.append(SkuRow(f"BOOTS-{model}-{size}", 80, 0, 0))
    for ball in ("MATCH-5", "TRAINING-5", "TRAINING-4"):
        rows.append(SkuRow(f"BALL-{ball}", 500, 0, 0, low_stock_threshold=25))
    return rows
