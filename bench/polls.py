"""Checkout under a live-poll vote storm (issue 7): do votes slow checkout, or touch stock?

    python -m bench.polls              # ~2 min: phases of 15 s, 300 votes/s, 8 checkout workers
    python -m bench.polls --quick      # short phases (the smoke test's call)
    python -m bench.polls --attach     # the running stack MATCHDAY_DATA_DIR names (as bench.http)

One ``matchday run`` stack (HAProxy ingress, ``bench.http_stack`` as in ``bench.http``), embedded
PostgreSQL 16 and Redis (``--attach [--stack-pid PID]``: a running stack serving shop, orders and
polls with a high rate limit, and its servers, found as ``bench.http --attach`` finds them); each
load generator is a process of its own. ``idle``: the stack's own cores and commits. ``votes``: the
storm alone (cores over idle, commits; the engine's journal and the poll SKUs' stock must not
move). ``a``: checkout alone: C workers, each looping: a new shopper (token signed here with the
stack's secret), a new cart, then timed: ``POST /api/shop/carts/{cart}/items`` (1 unit of a hot
SKU) + ``POST /api/orders/`` with ``pm_card_visa`` (test gateway). ``b``: the same during the storm
(open-loop votes at a fixed rate, each by a new shopper on one of P open polls whose options name
real SKUs; S results streams open). ``c``: the same beside a CPU burner as big as the storm alone
was: CPU contention (2 cores) vs contention on shared state. Reported: per phase checkouts/s,
p50/p95/p99 ms, ratios to a; votes/s; accepted votes vs ``poll_votes`` rows after the drain and the
transactions that wrote them (distinct ``stored_at``: ``now()`` is one per transaction); engine
journal rows per checkout and from votes; no oversell. Exit 1 if a check fails, never on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench.http import RESULTS, create_hot_skus, sql
from bench.http_client import percentile, uvloop
from bench.http_stack import Attached, AttachError, servers
from cluster.stack_process import Stack
from matchday.embedded import remove_tree
from matchday.ops.cpu_roles import NOT_ROLES, cores_used, cpu_sample
from matchday.settings import Settings
from matchday.web.identity import Identity

OPTIONS = 3
APPS = "shop,orders,polls"  # what the storm and checkout reach
KEYS = ("checkouts_per_s", "p50_ms", "p95_ms", "p99_ms")
MAX_INFLIGHT_VOTES = 256  # beyond it a due vote is counted missed, not queued (open loop)
ENGINE = (  # journal rows; those of the poll SKUs; the poll SKUs' counters
    "SELECT (SELECT count(*) FROM inventory_journal),"
    " (SELECT count(*) FROM inventory_journal WHERE sku = ANY(%s)),"
    " (SELECT string_agg(concat_ws('/', sku, on_hand, reserved, sold), ' ' ORDER BY sku)"
    "  FROM inventory WHERE sku = ANY(%s))"
)
COMMITS = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
VOTES = (  # rows, distinct voters, transactions that stored them, the biggest one
    "SELECT count(*), count(DISTINCT (poll_id, customer_id)), count(DISTINCT stored_at),"
    " (SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM poll_votes"
    "  WHERE poll_id = ANY(%s) GROUP BY stored_at) b)"
    " FROM poll_votes WHERE poll_id = ANY(%s)"
)
STOCK = (
    "SELECT on_hand, reserved, sold, (SELECT count(*) FROM orders o JOIN order_lines l USING"
    " (order_id) WHERE l.sku = i.sku AND o.status = 'paid') FROM inventory i WHERE sku = %s"
)


async def create_polls(settings: Settings, count: int, skus: list[str]) -> list[str]:
    from matchday.domain.ids import derived_id
    from matchday.polls.models import OptionIn, PollIn
    from matchday.storage.db import make_pool
    from matchday.storage.polls_repo import PollsRepository

    options = [OptionIn(label=f"Player {i + 1}", sku=sku) for i, sku in enumerate(skus)]
    spec = PollIn(question="Player of the match?", placement="checkout", options=options)
    async with make_pool(settings.database_url, max_size=1) as pool:
        ids = [derived_id("p", uuid.uuid4().hex) for _ in range(count)]
        return [(await PollsRepository(pool).create(i, spec, "bench")).poll_id for i in ids]


async def post(http: aiohttp.ClientSession, url: str, token: str, body: Any = None) -> Any:
    """(status, the answer's JSON if 2xx)."""
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, (await r.json() if r.status in (200, 201) else None)


def client(cfg: dict[str, Any], stop: Any, out: Any) -> None:
    """A spawned process's body: the checkout load of a phase, or the vote storm until stop."""
    if uvloop is not None:
        uvloop.install()
    out.put({"event": "ready"})
    out.put(asyncio.run(checkout(cfg, out) if cfg["role"] == "checkout" else votes(cfg, stop)))


MIN_IN_WINDOW = 3  # checkouts a measured window holds before it may end
LATE_WINDOW_S = 30.0  # how long past its seconds a window waits for them


async def checkout(cfg: dict[str, Any], out: Any) -> dict[str, Any]:
    """C workers, each: new shopper, new cart, then timed: add one unit, place the order."""
    t: dict[str, Any] = {"lat": [], "paid_total": 0, "in_window": 0, "errors": Counter()}
    base, ident, window, stopping = cfg["base"], Identity(cfg["secret"]), [math.inf] * 2, False
    item, enough = {"sku": cfg["sku"], "qty": 1}, asyncio.Event()

    async def worker() -> None:
        while not stopping:
            token = ident.new_customer()[1]
            try:
                status, cart = await post(http, f"{base}/api/shop/carts", token)
                started, cart_id = time.monotonic(), cart and cart["cart_id"]
                if status == 201:
                    items = f"{base}/api/shop/carts/{cart_id}/items"
                    status, _ = await post(http, items, token, item)
                if status == 201:
                    pay = {"cart_id": cart_id, "payment_token": "pm_card_visa"}
                    status, order = await post(http, f"{base}/api/orders/", token, pay)
                key = order["status"] if status == 201 else str(status)
            except Exception as exc:  # counted, never fatal
                key = type(exc).__name__
            if key != "paid":
                t["errors"][key] += 1
                continue
            t["paid_total"] += 1
            if window[0] <= (done := time.monotonic()) < window[1]:
                t["in_window"] += 1
                t["lat"].append((done - started) * 1000)
                if t["in_window"] >= MIN_IN_WINDOW:
                    enough.set()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        workers = [asyncio.create_task(worker()) for _ in range(cfg["concurrency"])]
        for i, (wait, event) in enumerate(((cfg["warmup"], "start"), (cfg["seconds"], "end"))):
            await asyncio.sleep(wait)
            # On a busy machine a short phase can end before any checkout finishes (p50 was
            # 300 ms with 2 workers at load 12): a window always holds a few, within a bound.
            if i:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(enough.wait(), LATE_WINDOW_S)
            window[i] = time.monotonic()
            out.put({"event": f"window_{event}"})
        stopping = True
        await asyncio.gather(*workers)
    lat = t.pop("lat")
    t["checkouts_per_s"] = round(t["in_window"] / (window[1] - window[0]), 1)
    return {**t, **{f"p{q}_ms": round(percentile(lat, q), 1) for q in (50, 95, 99)}}


async def votes(cfg: dict[str, Any], stop: Any) -> dict[str, Any]:
    """Open-loop votes at votes_per_s, each by a new shopper, and ``streams`` SSE readers."""
    t: dict[str, Any] = {"statuses": Counter(), "done": [], "lat": [], "missed": 0, "events": 0}
    base, polls, ident = cfg["base"], cfg["poll_ids"], Identity(cfg["secret"])

    async def vote(i: int) -> None:
        url, started = f"{base}/api/polls/{polls[i % len(polls)]}/votes", time.monotonic()
        try:
            body = {"option_id": f"o{random.randint(1, OPTIONS)}"}
            key = str((await post(http, url, ident.new_customer()[1], body))[0])
        except Exception as exc:  # counted, never fatal
            key = type(exc).__name__
        t["statuses"][key] += 1
        if key == "201":
            t["done"].append(time.monotonic())
            t["lat"].append((t["done"][-1] - started) * 1000)

    async def follow(poll_id: str) -> None:
        while True:
            try:
                async with sse.get(f"{base}/api/polls/{poll_id}/events") as r:
                    async for line in r.content:
                        t["events"] += line.startswith(b"event: results")
            except Exception:  # a stream that ends or fails is opened again
                await asyncio.sleep(0.2)

    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession() as http, aiohttp.ClientSession(timeout=timeout) as sse:
        streams = [asyncio.create_task(follow(p)) for p in (polls * 99)[: cfg["streams"]]]
        inflight: set[asyncio.Task[None]] = set()
        started, sent = time.monotonic(), 0
        while not stop.is_set():
            for _ in range(sent, int((time.monotonic() - started) * cfg["votes_per_s"])):
                if len(inflight) >= MAX_INFLIGHT_VOTES:
                    t["missed"] += 1
                else:
                    inflight.add(task := asyncio.create_task(vote(sent)))
                    task.add_done_callback(inflight.discard)
                sent += 1
            await asyncio.sleep(0.005)
        await asyncio.gather(*inflight)
        for task in streams:
            task.cancel()
    return {**t, "sent": sent}


def burn(share: float, stop: Any, out: Any) -> None:
    """A CPU burner: busy ``share`` of every 20 ms."""
    out.put({"event": "ready"})
    while not stop.is_set():
        until = time.perf_counter() + share * 0.02
        while time.perf_counter() < until:
            pass
        time.sleep((1 - share) * 0.02)


class Helper:
    """Spawned processes (sharing nothing with this one), a stop event and a queue."""

    def __init__(self, name: str, target: Any, *argsets: tuple[Any, ...]) -> None:
        ctx = mp.get_context("spawn")
        self.stop, self.out = ctx.Event(), ctx.Queue()
        self.procs = [ctx.Process(target=target, args=(*a, self.stop, self.out), daemon=True)
                      for a in argsets]  # fmt: skip
        for proc in self.procs:
            proc.start()
        self.pids = {f"{name}{i}": p.pid for i, p in enumerate(self.procs)}
        for _ in self.procs:
            self.out.get(timeout=120)  # each is ready

    def finish(self, results: int = 0) -> list[dict[str, Any]]:
        self.stop.set()
        got = [self.out.get(timeout=120) for _ in range(results)]
        for proc in self.procs:
            proc.join(30)
        return got


def rate_in(done: list[float], window: list[float]) -> float:
    return round(sum(window[0] <= d < window[1] for d in done) / (window[1] - window[0]), 1)


def run_phases(cfg: dict[str, Any], roots: dict[str, Any]) -> dict[str, Any]:
    query = lambda q, *a: list(asyncio.run(sql(cfg["db"], q, *a))[0])  # noqa: E731
    engine = lambda: query(ENGINE, cfg["skus"], cfg["skus"])  # noqa: E731
    ours = lambda w: sum(v for k, v in w["cores"].items() if k not in NOT_ROLES)  # noqa: E731
    storm = lambda: Helper("storm", client, ({**cfg, "role": "storm"},))  # noqa: E731
    f: dict[str, Any] = {"storms": []}

    def window(extra: dict[str, Any], seconds: float) -> dict[str, Any]:
        c0, s0 = query(COMMITS)[0], cpu_sample({**roots, **extra})
        time.sleep(seconds)
        s1, c1 = cpu_sample({**roots, **extra}), query(COMMITS)[0]
        return {"cores": cores_used(s0, s1), "commits_per_s": round((c1 - c0) / seconds, 1),
                "window": [s0.at, s1.at]}  # fmt: skip

    def phase(name: str, extra: dict[str, Any]) -> dict[str, Any]:
        j0, run = engine()[0], Helper("client", client, ({**cfg, "role": "checkout"},))
        watched, samples = {**roots, **extra, **run.pids}, []
        for _ in range(2):  # at the window's start and end
            run.out.get(timeout=120)
            samples.append(cpu_sample(watched))
        p = f[name[0]] = {**run.finish(1)[0], "cores": cores_used(*samples)}
        p["window"] = [s.at for s in samples]
        p["journal_per_checkout"] = round((engine()[0] - j0) / max(p["paid_total"], 1), 3)
        print(f"  {name:<9}{p['checkouts_per_s']:>7,.1f} checkouts/s  p50 {p['p50_ms']:>6.1f}  "
              f"p95 {p['p95_ms']:>6.1f}  p99 {p['p99_ms']:>6.1f} ms  errors "
              f"{sum(p['errors'].values())}  [machine {p['cores']['machine']} cores, other "
              f"load {p['cores']['foreign']}]", flush=True)  # fmt: skip
        return p

    time.sleep(cfg["warmup"])
    print(f"  idle      {cfg['idle_seconds']:g} s", flush=True)
    f["idle"], engine_before = window({}, cfg["idle_seconds"]), engine()
    storming = storm()
    time.sleep(cfg["warmup"])
    v = f["votes"] = window(storming.pids, cfg["idle_seconds"])
    f["storms"] += storming.finish(1)
    v.update(engine_before=engine_before, engine_after=engine())
    stored = asyncio.run(drained(cfg, f["storms"][0]["statuses"]["201"]))
    v["votes_per_transaction"] = round(stored[0] / max(stored[2], 1), 1)
    v["votes_per_s"] = rate_in(f["storms"][0]["done"], v["window"])
    v["storm_cores"] = cores = round(max(ours(v) - ours(f["idle"]), 0.05), 2)
    print(f"  votes     {v['votes_per_s']:,.0f} votes/s alone, {cores} cores over idle", flush=True)
    phase("a", {})
    b = phase("b storm", (storming := storm()).pids)
    f["storms"] += storming.finish(1)
    b["votes_per_s"] = rate_in(f["storms"][-1]["done"], b["window"])
    b["vote_p99_ms"] = round(percentile(f["storms"][-1]["lat"], 99), 1)
    if not cfg["no_burner"]:
        burner = Helper("burner", burn, *[(cores / math.ceil(cores),)] * math.ceil(cores))
        phase("c burner", burner.pids)
        burner.finish()
    for s in f["storms"]:
        del s["lat"], s["done"]  # keep the JSON small
    return f


async def drained(cfg: dict[str, Any], accepted: int) -> list[int]:
    """VOTES' row once ``accepted`` votes are stored (the drain writes behind), or after 60 s."""
    deadline = time.monotonic() + 60
    while True:
        found = list((await sql(cfg["db"], VOTES, *[cfg["poll_ids"]] * 2))[0])
        if found[0] >= accepted or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def checks(cfg: dict[str, Any], f: dict[str, Any]) -> dict[str, Any]:
    accepted, db = sum(s["statuses"].get("201", 0) for s in f["storms"]), cfg["db"]
    rows, distinct, batches, biggest = await drained(cfg, accepted)
    on_hand, reserved, sold, paid = (await sql(db, STOCK, cfg["sku"]))[0]
    end, before = (await sql(db, ENGINE, *[cfg["skus"]] * 2))[0], f["votes"]["engine_before"]
    phases = [f[n] for n in "abc" if n in f]
    c = {"votes_accepted": accepted, "votes_stored": rows, "distinct_voters": distinct,
         "pg_transactions_storing_votes": batches, "biggest_batch": biggest,
         "votes_per_transaction": round(rows / max(batches, 1), 1),
         "journal_rows_votes_alone": f["votes"]["engine_after"][0] - before[0],
         "poll_skus_journal_rows": end[1], "on_hand": on_hand, "sold": sold,
         "reserved": reserved, "paid_orders": paid,
         "paid_answers": sum(p["paid_total"] for p in phases),
         "journal_per_checkout": {n: p["journal_per_checkout"] for n, p in f.items()
                                  if n in "abc"}}  # fmt: skip
    c["every_vote_stored_once"] = accepted > 0 and rows == distinct == accepted
    c["votes_never_touch_engine"] = (c["journal_rows_votes_alone"] == 0 == end[1]
        and end[2] == before[2] and len(set(c["journal_per_checkout"].values())) == 1)  # fmt: skip
    c["no_oversell"] = sold == paid == c["paid_answers"] and reserved == 0 and sold <= on_hand
    c["phases_ran"] = all(p["in_window"] > 0 for p in phases) and f["b"]["votes_per_s"] > 0
    c["ok"] = all(c[k] for k in ("every_vote_stored_once", "votes_never_touch_engine",
                                 "no_oversell", "phases_ran"))  # fmt: skip
    return c


def report(f: dict[str, Any], c: dict[str, Any], cfg: dict[str, Any]) -> str:
    lines = ["", "| phase | checkouts/s | p50 ms | p95 ms | p99 ms | vs a: checkouts/s, p50, p99 |",
             "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for n, label in (("a", "checkout alone"), ("b", "+ vote storm"), ("c", "+ CPU burner")):
        if n in f:
            p = f[n]
            p["vs_a"] = {k: round(p[k] / max(f["a"][k], 1e-9), 2) for k in KEYS}
            ratios = ", ".join(f"{p['vs_a'][k]:.2f}x" for k in KEYS if k != "p95_ms")
            lines.append(
                f"| {n}: {label} | {' | '.join(f'{p[k]:,.1f}' for k in KEYS)} | {ratios} |"
            )
    storms, v, b = f["storms"], f["votes"], f["b"]
    commits = (v["commits_per_s"] - f["idle"]["commits_per_s"]) / max(v["votes_per_s"], 1e-9)
    lines += [
        "", f"votes: {b['votes_per_s']:,.0f}/s during b (target {cfg['votes_per_s']:g}, vote p99 "
        f"{b['vote_p99_ms']} ms); alone {v['votes_per_s']:,.0f}/s on {v['storm_cores']} cores "
        f"over idle; {sum(x['events'] for x in storms)} live-results events on {cfg['streams']} "
        f"streams; {sum(x['missed'] for x in storms)} due votes missed; answers "
        f"{dict(sum((Counter(x['statuses']) for x in storms), Counter()))}",
        f"PostgreSQL: {c['votes_accepted']:,} accepted votes -> {c['votes_stored']:,} rows in "
        f"poll_votes, written by {c['pg_transactions_storing_votes']:,} transactions "
        f"({c['votes_per_transaction']} votes each on average, {v['votes_per_transaction']} "
        f"while votes ran alone, at most {c['biggest_batch']}); "
        f"commits/s idle {f['idle']['commits_per_s']}, votes alone {v['commits_per_s']} "
        f"({commits:.2f} per vote)",
        f"engine: journal rows while votes alone {c['journal_rows_votes_alone']}, on the poll "
        f"SKUs {c['poll_skus_journal_rows']}; per checkout {c['journal_per_checkout']}",
        f"stock: sold {c['sold']} = paid orders {c['paid_orders']} = paid answers "
        f"{c['paid_answers']}, reserved {c['reserved']}",
    ]  # fmt: skip
    if "c" in f and (drop := 1 - b["vs_a"]["checkouts_per_s"]) > 0:
        lines.append(f"the CPU burner ({v['storm_cores']} cores) costs "
                     f"{(1 - f['c']['vs_a']['checkouts_per_s']) / drop:.0%} of the "
                     "checkouts/s the storm costs")  # fmt: skip
    return "\n".join(lines)


def parse(argv: list[str] | None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="short phases, 100 votes/s")
    add("--seconds", type=float, help="measured s per checkout phase (15; 2 with --quick)")
    add("--warmup", type=float, help="unmeasured s before each (3; 1 with --quick)")
    add("--idle-seconds", type=float, help="the idle and votes-alone windows (5; 1 with --quick)")
    add("--votes-per-s", type=float, help="the storm's target rate (300; 100 with --quick)")
    add("--concurrency", type=int, default=8, help="checkout workers (8)")
    add("--polls", type=int, default=3, help="open polls voted on (3)")
    add("--streams", type=int, default=4, help="live-results streams open during storms (4)")
    add("--no-burner", action="store_true", help="skip phase c")
    add("--json", type=Path, help="where to write every figure (bench/results/polls-<time>.json)")
    add("--attach", action="store_true", help="measure the running stack, as bench.http --attach")
    add("--stack-pid", type=int, help="with --attach: its root process (default: its stack.json)")
    cfg = vars(parser.parse_args(argv))
    if cfg["stack_pid"] is not None and not cfg["attach"]:
        parser.error("--stack-pid goes with --attach")
    defaults = {"seconds": (15, 2), "warmup": (3, 1), "idle_seconds": (5, 1),
                "votes_per_s": (300, 100)}  # fmt: skip
    for key, (full, quick) in defaults.items():
        cfg[key] = cfg[key] if cfg[key] is not None else (quick if cfg["quick"] else full)
    cfg["json"] = str(cfg["json"] or RESULTS / f"polls-{time.strftime('%Y%m%d-%H%M%S')}.json")
    return cfg


def main(argv: list[str] | None = None) -> int:
    cfg = parse(argv)
    try:
        attached = Attached.find(cfg["stack_pid"], APPS.split(",")) if cfg["attach"] else None
    except AttachError as exc:
        print(f"bench.polls --attach: {exc}", file=sys.stderr)
        return 2
    figures: dict[str, Any] = {"settings": dict(cfg), "started": time.strftime("%FT%T%z")}
    figures["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    work = Path(tempfile.mkdtemp(prefix="matchday-bench-polls-"))
    try:
        with servers(attached, work) as (settings, roots):
            cfg["db"], cfg["secret"] = settings.database_url, settings.secret_key.get_secret_value()
            tag = uuid.uuid4().hex[:6].upper()
            cfg["sku"], cfg["skus"] = f"CHK-{tag}-M", [f"POLL{i}-{tag}-M" for i in range(OPTIONS)]
            asyncio.run(create_hot_skus(settings, [cfg["sku"], *cfg["skus"]]))
            cfg["poll_ids"] = asyncio.run(create_polls(settings, cfg["polls"], cfg["skus"]))
            print(f"checkout ({cfg['concurrency']} workers) alone, under {cfg['votes_per_s']:g} "
                  f"votes/s ({cfg['polls']} polls, {cfg['streams']} streams), beside a CPU "
                  f"burner: {cfg['seconds']:g} s each after {cfg['warmup']:g} s",
                  flush=True)  # fmt: skip
            stack = attached or Stack("haproxy", cfg["db"], settings.redis_url, work, apps=APPS)
            if isinstance(stack, Stack):  # shoppers' tokens are signed here
                stack.env["MATCHDAY_SECRET_KEY"] = cfg["secret"]
            started = time.monotonic()
            with stack.start():
                print(f"  stack up after {time.monotonic() - started:.0f} s", flush=True)
                cfg["base"], roots["stack"] = stack.base, stack.pid()
                figures["phases"] = f = run_phases(cfg, roots)
                print("  waiting for the drain to store every vote", flush=True)
                figures["checks"] = c = asyncio.run(checks(cfg, f))
    finally:
        remove_tree(work)
    print(report(f, c, cfg))
    Path(cfg["json"]).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg["json"]).write_text(json.dumps(figures, indent=2))
    print(f"\nchecks {'ok' if c['ok'] else 'FAILED: ' + json.dumps(c)}; figures in {cfg['json']}")
    return 0 if c["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
