"""Debian's Chromium driven by Playwright: the one launch recipe for tests, screenshots, bench.

In ``cluster/`` because ``matchday screenshots`` uses it and the product CLI never imports
``bench/`` (issue 14); ``bench.storefront`` imports it from here.

Never a downloaded browser (ADR 0015): ``executable_path`` is the distribution's binary, which
``scripts/ensure-chromium`` installs. Every launch gets a fresh temporary profile (Playwright
makes one per ``launch()``) and flags that keep Chromium from calling anywhere but the
loopback URLs we open.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Target:
    """A storefront to open: its base URL and, when known, the stack's database."""

    base: str
    database_url: str = ""


@contextmanager
def demo_stack(say: Any = print) -> Iterator[Target]:
    """``matchday run`` (a subprocess, ``cluster.stack_process.Stack``, as ``bench.http`` starts
    it) on fresh embedded PostgreSQL and Redis seeded with the demo catalogue."""
    import asyncio
    import tempfile

    from cluster.stack_process import Stack
    from matchday.bootstrap import seed_demo
    from matchday.embedded import remove_tree, start_servers
    from matchday.settings import Settings
    from matchday.storage.db import migrate

    work = Path(tempfile.mkdtemp(prefix="matchday-browser-"))
    say("starting PostgreSQL and Redis ...")
    db_url, redis_url, servers = start_servers("", "", work / "servers")
    try:
        migrate(db_url)
        settings = Settings(database_url=db_url, redis_url=redis_url, data_dir=work)
        say(f"seeded {asyncio.run(seed_demo(settings))} demo SKUs; starting `matchday run` ...")
        with Stack(settings.ingress, db_url, redis_url, work) as stack:
            say(f"stack up at {stack.base}")
            yield Target(stack.base, db_url)
    finally:
        for server in reversed(servers):
            server.stop()
        remove_tree(work)


# Resolves when every image in the viewport has loaded (or failed): lazy ones below the fold
# are not waited for. Passed to evaluate(), never as a string predicate: the storefront's CSP
# forbids the eval that wait_for_function's string form needs.
IMAGES_SETTLED = """() => Promise.all([...document.images]
  .filter((img) => img.getBoundingClientRect().top < innerHeight)
  .map((img) => img.complete ? null : new Promise((done) => {
    img.addEventListener("load", done); img.addEventListener("error", done); })))"""


async def settled(page: Any, quiet_s: float = 0.3) -> None:
    """The page rendered its data (``<body data-ready="1">``) and its visible images.

    Not Playwright's "networkidle": a product page keeps an event stream open (polls) and
    polls availability every few seconds, so the network is never idle there.
    """
    import asyncio

    await page.wait_for_selector('body[data-ready="1"]', state="attached")
    await page.evaluate(IMAGES_SETTLED)
    await asyncio.sleep(quiet_s)
