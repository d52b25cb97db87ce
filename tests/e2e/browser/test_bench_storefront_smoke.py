"""``python -m bench.storefront`` in miniature: one cold+warm run against the served stack."""

from __future__ import annotations

from typing import Any

import pytest

from bench.storefront import FIELDS, measure, table
from tests.e2e.browser.conftest import shop_product
from tests.e2e.conftest import Served

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


async def test_the_storefront_bench_reports_cold_and_warm_product_page_figures(
    browser: Any, served: Served
) -> None:  # ``browser``: skip or fail as the other browser tests do without Chromium
    slug, _ = await shop_product(served, {"M": 3})
    lines: list[str] = []
    report = await measure(served.base, slug, runs=1, say=lines.append)

    assert report["url"].endswith(f"/p/{slug}") and report["runs"] == 1 and len(lines) == 1
    cold, warm = report["median"]["cold"], report["median"]["warm"]
    assert set(cold) == set(warm) == set(FIELDS)
    for figures in (cold, warm):
        assert figures["requests"] >= 1
        assert 0 < figures["ready_ms"] < 60_000
        assert figures["load_ms"] > 0
    # The first visit fetched the shell and its assets; the repeat visit got them locally.
    assert cold["transferred_bytes"] > 1000
    assert warm["from_sw"] + warm["from_cache"] >= 1
    assert warm["transferred_bytes"] < cold["transferred_bytes"]
    assert "| cold |" in table(report) and "| warm |" in table(report)
