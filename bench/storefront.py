"""Storefront benchmark: the product page in Debian's Chromium, cold and warm.

Usage::

    python -m bench.storefront                       # starts a demo stack, 5 runs, ~2 min
    python -m bench.storefront --url http://127.0.0.1:8000 --slug jersey-final-ltd --runs 3
    python -m bench.storefront --json /tmp/storefront.json

Each run launches a fresh Chromium (a new temporary profile: empty HTTP cache, no service
worker) and opens ``/p/<slug>`` twice:

``cold``  the first visit, as a shopper following a link: everything over the network.
``warm``  a second visit in a new tab of the same profile, once the service worker is active:
    the shell and the content-hashed assets come from the service worker or the HTTP cache,
    only what is not cached (live availability, polls) goes to the server.

Figures per visit (median over the runs, and every run in the JSON):
``transferred_bytes``  bytes on the wire, encoded (compressed) bodies and headers: Chromium's
    ``Network.loadingFinished.encodedDataLength`` for the page's requests (CDP), plus the
    requests the service worker itself made (Playwright's request sizes).
    ``page_bytes`` and ``sw_bytes`` split it: on the cold visit ``sw_bytes`` is the worker's
    install (the precache of the shell and every hashed asset, fetched once more).
``requests``, ``from_sw``, ``from_cache``  requests the page made, and how many of them the
    service worker or the HTTP cache answered.
``ready_ms``  navigation start to ``<body data-ready="1">`` (the page rendered its data).
``load_ms``   navigation start to the end of the load event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from cluster.browser import demo_stack, launch, missing_reason, settled

DEFAULT_SLUG = "jersey-final-ltd"  # the demo catalogue's headline product
RESULTS = Path(__file__).resolve().parent / "results"
FIELDS = (
    "transferred_bytes", "page_bytes", "sw_bytes", "requests", "from_sw", "from_cache",
    "ready_ms", "load_ms",
)  # fmt: skip

# Runs before the page's own scripts: the moment <body data-ready="1"> first appears.
READY_PROBE = """
new MutationObserver((_, observer) => {
  if (document.body && document.body.dataset.ready === "1") {
    window.__readyAt = performance.now();
    observer.disconnect();
  }
}).observe(document, {subtree: true, childList: true, attributes: true,
                      attributeFilter: ["data-ready"]});
"""

# An active worker has finished installing; a storefront without one must not hang the run.
SW_READY = """() => Promise.race([
  navigator.serviceWorker ? navigator.serviceWorker.ready.then(() => true) : false,
  new Promise((resolve) => setTimeout(() => resolve(false), 10000)),
])"""


class Traffic:
    """What one tab moved over the network, from its CDP session and its service worker."""

    def __init__(self) -> None:
        self.page_bytes = 0
        self.requests = 0
        self.from_sw = 0
        self.from_cache = 0
        self.sw_bytes = 0
        self.sw_pending: list[asyncio.Future[Any]] = []

    async def attach(self, context: Any, page: Any) -> None:
        cdp = await context.new_cdp_session(page)
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.requestServedFromCache", lambda _: self._cached())
        cdp.on("Network.loadingFinished", self._finished)
        await cdp.send("Network.enable")

    def _sent(self, _: dict[str, Any]) -> None:
        self.requests += 1

    def _cached(self) -> None:
        self.from_cache += 1

    def _response(self, event: dict[str, Any]) -> None:
        if event["response"].get("fromServiceWorker"):
            self.from_sw += 1

    def _finished(self, event: dict[str, Any]) -> None:
        self.page_bytes += int(event.get("encodedDataLength") or 0)

    def on_sw_request(self, request: Any) -> None:
        """A request the service worker sent to the network (not one it answered)."""
        if request.service_worker is not None:
            self.sw_pending.append(asyncio.ensure_future(request.sizes()))

    async def total(self) -> int:
        sizes = await asyncio.gather(*self.sw_pending, return_exceptions=True)
        # A negative body size is Chromium's mark of an answer from the HTTP cache: nothing
        # crossed the wire. Received bytes only (headers + encoded body), as CDP counts them.
        self.sw_bytes = sum(
            s["responseBodySize"] + max(0, s["responseHeadersSize"])
            for s in sizes
            if isinstance(s, dict) and s["responseBodySize"] >= 0
        )
        return self.page_bytes + self.sw_bytes


async def visit(context: Any, url: str, *, settle_sw: bool = False) -> dict[str, float]:
    page = await context.new_page()
    traffic = Traffic()
    await traffic.attach(context, page)
    context.on("requestfinished", traffic.on_sw_request)
    try:
        await page.goto(url, wait_until="load")
        await settled(page, quiet_s=1.0)  # late requests (availability, polls) counted too
        if settle_sw:  # the first visit also pays for the worker's install (its precache)
            await page.evaluate(SW_READY)
            await asyncio.sleep(0.3)  # let the last precache responses be reported
        timing = await page.evaluate(
            """() => { const n = performance.getEntriesByType("navigation")[0];
                       return {ready: window.__readyAt ?? performance.now(),
                               load: n ? n.loadEventEnd : 0}; }"""
        )
        total = await traffic.total()
    finally:
        context.remove_listener("requestfinished", traffic.on_sw_request)
        await page.close()
    return {
        "transferred_bytes": total,
        "page_bytes": traffic.page_bytes,
        "sw_bytes": traffic.sw_bytes,
        "requests": traffic.requests,
        "from_sw": traffic.from_sw,
        "from_cache": traffic.from_cache,
        "ready_ms": round(float(timing["ready"]), 1),
        "load_ms": round(float(timing["load"]), 1),
    }


async def one_run(pw: Any, url: str) -> dict[str, dict[str, float]]:
    browser = await launch(pw)  # a new temporary profile: nothing cached
    try:
        context = await browser.new_context(service_workers="allow")
        await context.add_init_script(READY_PROBE)
        cold = await visit(context, url, settle_sw=True)
        warm = await visit(context, url)  # the repeat shopper's, with the worker in charge
        return {"cold": cold, "warm": warm}
    finally:
        await browser.close()


async def measure(
    base: str, slug: str = DEFAULT_SLUG, runs: int = 5, say: Any = print
) -> dict[str, Any]:
    """Median cold and warm figures of ``/p/<slug>`` over ``runs`` fresh browsers."""
    from playwright.async_api import async_playwright

    url = f"{base.rstrip('/')}/p/{slug}"
    all_runs: list[dict[str, dict[str, float]]] = []
    async with async_playwright() as pw:
        for i in range(runs):
            result = await one_run(pw, url)
            all_runs.append(result)
            say(
                f"run {i + 1}/{runs}: "
                + "  ".join(
                    f"{k} {v['transferred_bytes'] / 1024:.1f} KiB {v['ready_ms']:.0f} ms"
                    for k, v in result.items()
                )
            )
    median = {
        visit_: {f: statistics.median(r[visit_][f] for r in all_runs) for f in FIELDS}
        for visit_ in ("cold", "warm")
    }
    return {"url": url, "runs": runs, "median": median, "all": all_runs}


def table(report: dict[str, Any]) -> str:
    rows = [
        "| visit | transferred (page + worker) | requests (SW / cache) | data ready | load |",
        "|---|---|---|---|---|",
    ]
    for name, m in report["median"].items():
        rows.append(
            f"| {name} | {m['transferred_bytes'] / 1024:.1f} KiB ({m['page_bytes'] / 1024:.1f}"
            f" + {m['sw_bytes'] / 1024:.1f}) | {m['requests']:.0f} "
            f"({m['from_sw']:.0f} / {m['from_cache']:.0f}) | {m['ready_ms']:.0f} ms "
            f"| {m['load_ms']:.0f} ms |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.storefront", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--url", help="a running stack (default: start a demo stack)")
    p.add_argument("--slug", default=DEFAULT_SLUG, help="the product page to load")
    p.add_argument("--runs", type=int, default=5, help="fresh browsers, one cold+warm each")
    p.add_argument("--json", type=Path, help="default bench/results/storefront-<time>.json")
    args = p.parse_args(argv)
    reason = missing_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    if args.url:
        report = asyncio.run(measure(args.url, args.slug, args.runs))
    else:
        with demo_stack() as stack:
            report = asyncio.run(measure(stack.base, args.slug, args.runs))
    out = args.json or RESULTS / f"storefront-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(table(report))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
