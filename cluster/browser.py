"""Debian's Chromium driven by Playwright: the one launch recipe for tests, screenshots, bench.

Never a downloaded browser (ADR 0015): ``executable_path`` is the distribution's binary, which
``scripts/ensure-chromium`` installs. Every launch gets a fresh temporary profile (Playwright
makes one per ``launch()``) and flags that keep Chromium from calling anywhere but the
loopback URLs we open.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("MATCHDAY_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",  # root in containers; the pages are our own, on loopback
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # no update checks, safe-browsing lists, metrics
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1000, "height": 700}


def missing_reason() -> str | None:
    """Why a browser cannot be launched here, or None when it can."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} is missing: run scripts/ensure-chromium (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -e '.[dev]'"
    return None


def launch(playwright: Any, **kwargs: Any) -> Any:
    """A headless Chromium Browser from ``sync_playwright()`` (or the async API's)."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=ARGS, **kwargs
    )
