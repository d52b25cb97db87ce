"""The load generator of ``bench.http``: one process, one asyncio loop, C connections.

    python -m bench.http_client --base http://127.0.0.1:8000 --sku SKU --concurrency 16 \
        --warmup 2 --seconds 10 [--baseline]

Runs in its own process so that it never shares an event loop (or a GIL) with the server
it measures. Every system gets exactly this client. Before any request is timed each of the
C workers opens a shopper session and a cart (matchday; the baseline has neither), then
loops "POST /api/shop/carts/{cart}/items {"sku": SKU, "qty": 1}, await the answer" over its
own keep-alive connection. Only 201 answers count as done.

Prints JSON lines on stdout: ``{"event": "ready", "setup_s"}`` once every connection has
its session and cart, ``{"event": "window_start"}`` when the warm-up ends,
``{"event": "window_end"}`` when the measured window ends (``bench.http`` samples CPU
between them), then one result object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

uvloop: Any
try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
    uvloop = None

ADD_PATH = "/api/shop/carts/{cart}/items"


@dataclass
class Tally:
    window_start: float = float("inf")
    window_end: float = float("inf")
    stopping: bool = False
    ok_total: int = 0  # 201 answers, warm-up included: what must be durable
    ok_in_window: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # 201s completed in the window
    statuses: dict[str, int] = field(default_factory=dict)  # every non-201 answer, any time
    exceptions: dict[str, int] = field(default_factory=dict)


async def open_cart(http: aiohttp.ClientSession, base: str) -> tuple[str, dict[str, str]]:
    async with http.post(f"{base}/api/shop/session") as r:
        assert r.status == 201, (r.status, await r.text())
        token = (await r.json())["token"]
    auth = {"Authorization": f"Bearer {token}"}
    async with http.post(f"{base}/api/shop/carts", headers=auth) as r:
        assert r.status == 201, (r.status, await r.text())
        cart = (await r.json())["cart_id"]
    return cart, auth


async def worker(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes, tally: Tally
) -> None:
    while not tally.stopping:
        started = time.perf_counter()
        try:
            async with http.post(url, data=body, headers=headers) as r:
                await r.read()
                status = r.status
        except Exception as exc:  # counted, never fatal: the figure shows it
            name = type(exc).__name__
            tally.exceptions[name] = tally.exceptions.get(name, 0) + 1
            continue
        done = time.perf_counter()
        if status != 201:
            tally.statuses[str(status)] = tally.statuses.get(str(status), 0) + 1
            continue
        tally.ok_total += 1
        if tally.window_start <= done < tally.window_end:
            tally.ok_in_window += 1
            tally.latencies_ms.append((done - started) * 1000.0)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = args.base.rstrip("/")
    connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        setup_started = time.perf_counter()
        carts: list[tuple[str, dict[str, str]]]
        if args.baseline:
            carts = [(f"c_{i:024x}", {}) for i in range(args.concurrency)]
        else:
            carts = list(
                await asyncio.gather(*(open_cart(http, base) for _ in range(args.concurrency)))
            )
        setup_s = time.perf_counter() - setup_started
        print(json.dumps({"event": "ready", "setup_s": round(setup_s, 3)}), flush=True)
        body = json.dumps({"sku": args.sku, "qty": 1}).encode()
        tally = Tally()
        workers = [
            asyncio.create_task(
                worker(
                    http,
                    base + ADD_PATH.format(cart=cart),
                    {**auth, "Content-Type": "application/json"},
                    body,
                    tally,
                )
            )
            for cart, auth in carts
        ]
        await asyncio.sleep(args.warmup)
        tally.window_start = time.perf_counter()
        print(json.dumps({"event": "window_start"}), flush=True)
        await asyncio.sleep(args.seconds)
        tally.window_end = time.perf_counter()
        print(json.dumps({"event": "window_end"}), flush=True)
        tally.stopping = True  # every worker finishes its request in flight, then stops
        await asyncio.gather(*workers)
    window = tally.window_end - tally.window_start
    lat = tally.latencies_ms
    return {
        "concurrency": args.concurrency,
        "seconds": round(window, 3),
        "setup_s": round(setup_s, 3),
        "requests_per_s": round(tally.ok_in_window / window, 1),
        "ok_in_window": tally.ok_in_window,
        "ok_total": tally.ok_total,
        "p50_ms": round(percentile(lat, 50), 2),
        "p99_ms": round(percentile(lat, 99), 2),
        "p999_ms": round(percentile(lat, 99.9), 2),
        "max_ms": round(max(lat, default=0.0), 2),
        "mean_ms": round(sum(lat) / len(lat), 2) if lat else 0.0,
        "errors": {**tally.statuses, **tally.exceptions},
        "errors_total": sum(tally.statuses.values()) + sum(tally.exceptions.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="http://127.0.0.1:PORT (loopback only)")
    parser.add_argument("--sku", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--baseline", action="store_true", help="no sessions or carts")
    args = parser.parse_args(argv)
    host = args.base.split("//", 1)[-1].split(":", 1)[0].split("/", 1)[0]
    if host not in ("127.0.0.1", "localhost", "[::1]"):
        parser.error("the benchmark only sends traffic to loopback")
    if uvloop is not None:
        uvloop.install()
    result = asyncio.run(run(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
