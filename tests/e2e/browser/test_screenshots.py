"""``matchday screenshots``' walk against the served stack: six real PNGs of the right size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from cluster.browser import VIEWPORT, Target
from cluster.screenshots import PAGES, shoot
from tests.e2e.browser.conftest import shop_product
from tests.e2e.conftest import Served

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


async def test_screenshots_of_the_main_pages_are_written(
    browser: Any, served: Served, tmp_path: Path
) -> None:  # ``browser``: skip or fail as the other browser tests do without Chromium
    slug, skus = await shop_product(served, {"M": 4, "L": 4})
    assert await shoot(Target(served.base, served.settings.database_url), tmp_path, slug) == 0

    written = sorted(p.stem for p in tmp_path.glob("*.png"))
    assert written == sorted(PAGES)
    for name in PAGES:
        with Image.open(tmp_path / f"{name}.png") as image:
            assert image.format == "PNG"
            assert image.size == (VIEWPORT["width"], VIEWPORT["height"])
            assert image.mode == "P"  # the 256-colour optimised form
            assert len(image.getcolors(256) or []) > 8, name  # a page, not a blank frame
        assert (tmp_path / f"{name}.png").stat().st_size < 100_000
    # The walk bought one unit of the product with the test card.
    async with served.client("/api/catalog") as catalog:
        units = (await catalog.get("/availability", params={"sku": list(skus.values())})).json()
    assert sum(units.values()) == 7
