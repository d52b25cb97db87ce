"""CPU and wall time per checkout, for docs/performance.md ("Checkout round trips").

Not a test (no timing is asserted in the suite): ``python -m tests.integration.checkout_cpu``
starts its own embedded PostgreSQL and Redis, opens the integration tier's shop stack and
places ``N`` (default 60) one-line checkouts through CheckoutService after 5 to warm up.
It prints the median wall time, this process's CPU per checkout (the checkout, the shard
core's extend and commit, the catalogue's price lookup, Redis) and PostgreSQL's (the
postmaster's children, from /proc). To measure an older commit with the same script:
``git archive <rev> | tar -x -C /tmp/old`` and run this file with ``PYTHONPATH=/tmp/old``
from /tmp/old.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from matchday.embedded import remove_tree, start_servers
from matchday.settings import Settings
from matchday.storage.db import migrate
from tests.conftest import uid
from tests.integration.shop_stack import open_stack

TICK = os.sysconf("SC_CLK_TCK")


def postgres_pids(data_dir: Path) -> list[int]:
    parents: dict[int, int] = {}
    postmaster = None
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            cmd = Path(f"/proc/{name}/cmdline").read_text()
        except OSError:
            continue
        parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
        if str(data_dir) in cmd and "postgres" in cmd:
            postmaster = int(name)
    assert postmaster is not None
    return [postmaster, *(pid for pid, parent in parents.items() if parent == postmaster)]


def cpu_s(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / TICK


class Timed:
    """``inner`` with each awaited method call's wall time added to ``spent[name.method]``."""

    def __init__(self, name: str, inner: Any, spent: dict[str, float]) -> None:
        self._name, self._inner, self._spent = name, inner, spent

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._inner, attr)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            got = value(*args, **kwargs)
            if not hasattr(got, "__await__"):
                return got

            async def timed() -> Any:
                started = time.perf_counter()
                try:
                    return await got
                finally:
                    key = f"{self._name}.{attr}"
                    self._spent[key] += time.perf_counter() - started

            return timed()

        return call


PORTS = ("repo", "stock", "prices", "gateway", "events", "payments", "fraud", "offers")


def time_ports(checkout: Any, spent: dict[str, float]) -> None:
    for port in PORTS:
        if getattr(checkout, port, None) is not None:
            setattr(checkout, port, Timed(port, getattr(checkout, port), spent))
    checkout.holds.stock, checkout.holds.repo = checkout.stock, checkout.repo


async def measure(settings: Settings, postgres_dir: Path, n: int) -> str:
    walls: list[float] = []
    own = server = 0.0
    steps: dict[str, list[float]] = defaultdict(list)
    async with open_stack(settings) as stack:
        checkout = stack.ctx.checkout
        spent: dict[str, float] = defaultdict(float)
        if os.environ.get("STEPS") == "1":
            time_ports(checkout, spent)
        for i in range(n + 5):
            (sku,) = await stack.product(stock=5)
            auth = await stack.session()
            cart = await stack.cart(auth)
            r = await stack.shop.post(f"/carts/{cart}/items", json={"sku": sku}, headers=auth)
            assert r.status_code == 201, r.text
            header = await stack.ctx.repo.cart_header(cart)
            assert header is not None
            pids = postgres_pids(postgres_dir)
            spent.clear()
            c0, s0, w0 = time.process_time(), cpu_s(pids), time.perf_counter()
            order = await checkout.checkout(header.customer_id, cart, "pm_card_visa", f"k{i}")
            w1, c1, s1 = time.perf_counter(), time.process_time(), cpu_s(pids)
            assert order.status == "paid", order
            if i >= 5:
                walls.append(w1 - w0)
                own, server = own + c1 - c0, server + s1 - s0
                for step, took in spent.items():
                    steps[step].append(took)
    by_step = "".join(
        f"\n  {step}: {statistics.median(v + [0.0] * (n - len(v))) * 1000:.2f} ms"
        for step, v in sorted(steps.items(), key=lambda kv: -sum(kv[1]))
    )
    return (
        f"N={n} wall median {statistics.median(walls) * 1000:.1f} ms;"
        f" this process {own / n * 1000:.1f} ms CPU per checkout;"
        f" PostgreSQL {server / n * 1000:.1f} ms CPU per checkout{by_step}"
    )


def main() -> None:
    n = int(os.environ.get("N", "60"))
    data_dir = Path(tempfile.mkdtemp(prefix="checkout-cpu-"))
    db_url, redis_url, started = start_servers("", "", data_dir)
    try:
        migrate(db_url)
        settings = Settings(
            database_url=db_url,
            redis_url=redis_url,
            data_dir=data_dir,
            namespace=uid("cpu"),
            stream_name=uid("stream"),
            availability_key=uid("availability"),
        )
        print(asyncio.run(measure(settings, data_dir / "postgres", n)))
    finally:
        for server in reversed(started):
            server.stop()
        remove_tree(data_dir)


if __name__ == "__main__":
    main()
