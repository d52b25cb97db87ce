"""The benchmarks' accounting over runs (bench.costs), issue 12's target lines
(bench.targets), the CPU budget check (bench.budget) and the bounded waits (bench.watch), with
hand-computed cases. No timing is asserted anywhere."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from bench.budget import SMOKE_LIMIT, checked_roles, compare, entries, probe_of
from bench.costs import (
    GROSS,
    NET,
    cpu_model,
    machine_line,
    machine_probe,
    phase_cost,
    spread,
    spreads,
    summarize,
    summary_json,
)
from bench.targets import http_targets, inventory_targets
from bench.watch import Stalled, bounded, bounded_sync
from matchday.ops.cpu_roles import SERVER_TOTAL, CpuSample


def test_spread_is_the_median_with_min_and_max() -> None:
    assert spread([3.0, 1.0, 2.0]) == spread([1.0, 2.0, 3.0])
    s = spread([3.0, 1.0, 2.0])
    assert (s.median, s.lo, s.hi, s.n) == (2.0, 1.0, 3.0, 3)
    assert spread([1.0, 2.0, 3.0, 4.0]).median == 2.5
    assert s.fmt(1) == "2.0 [1.0-3.0]"
    assert spread([7.0]).fmt(1, "x") == "7.0x"  # one run: no range


def test_spreads_count_a_role_missing_from_a_run_as_zero_in_it() -> None:
    got = spreads([{"shards": 10.0, "ray:gcs": 1.0}, {"shards": 30.0}, {"shards": 20.0}])
    assert got["shards"].median == 20.0
    assert (got["ray:gcs"].median, got["ray:gcs"].lo, got["ray:gcs"].hi) == (0.0, 0.0, 1.0)


def phase(rate: float, p99: float, net_total: float) -> dict[str, Any]:
    return {
        "reserves_per_s": rate,
        "p50_ms": p99 / 4,
        "p99_ms": p99,
        GROSS: {SERVER_TOTAL: net_total + 10, "shards": net_total / 2},
        NET: {SERVER_TOTAL: net_total, "shards": net_total / 2},
    }


RUNS = [  # engine against the row lock, three rounds at c=64
    {"64": {"engine": phase(100, 50, 40), "row lock": phase(50, 80, 5)}},
    {"64": {"engine": phase(200, 40, 20), "row lock": phase(50, 90, 5)}},
    {"64": {"engine": phase(300, 60, 30), "row lock": phase(100, 70, 5)}},
]


def test_summarize_takes_the_median_of_each_rounds_ratio_not_the_ratio_of_medians() -> None:
    s = summarize(RUNS, "row lock", "reserves_per_s")["64"]["engine"]
    # Per round: 100/50 = 2, 200/50 = 4, 300/100 = 3 -> median 3 (medians' ratio: 200/50 = 4).
    assert (s["ratio"].median, s["ratio"].lo, s["ratio"].hi) == (3.0, 2.0, 4.0)
    assert s["rate"].median == 200
    assert s["p99_ms"].median == 50
    assert s[NET][SERVER_TOTAL].median == 30
    assert s[NET]["shards"].median == 15
    assert s[GROSS][SERVER_TOTAL].median == 40
    assert summarize(RUNS, "row lock", "reserves_per_s")["64"]["row lock"]["ratio"].median == 1.0
    as_json = summary_json(summarize(RUNS, "row lock", "reserves_per_s"))
    assert as_json["64"]["engine"]["ratio"] == {"median": 3.0, "min": 2.0, "max": 4.0, "runs": 3}
    json.dumps(as_json)


def test_phase_cost_gives_cores_and_gross_and_net_cpu_per_op() -> None:
    before = CpuSample(0.0, {(1, 0.0): ("shards", 1.0), (2, 0.0): ("load generator", 0.0)}, 0, 0)
    after = CpuSample(2.0, {(1, 0.0): ("shards", 1.4), (2, 0.0): ("load generator", 1.0)}, 2, 0)
    cost = phase_cost(before, after, 200, {"shards": 0.05})
    assert cost["window_s"] == 2.0 and cost["ops"] == 200
    assert cost["cores_used"]["shards"] == pytest.approx(0.2)
    assert cost[GROSS]["shards"] == 2000.0  # 0.4 s / 200
    assert cost[NET]["shards"] == 1500.0  # (0.4 - 0.05 * 2) s / 200
    assert cost[NET][SERVER_TOTAL] == 1500.0  # the load generator is not the server


def test_inventory_targets_pass_or_fall_short_per_line() -> None:
    runs = [{c: {"engine": phase(r, 40, us), "row lock": phase(100, 50, 5)}
             for c, r, us in (("64", 390, 25), ("256", 520, 35))}]  # fmt: skip
    got = {t.name: t for t in inventory_targets(summarize(runs, "row lock", "reserves_per_s"))}
    assert got["hot SKU durable, c=256: engine / row lock"].met is True  # 5.2x >= 5x
    assert got["hot SKU durable, c=64: engine / row lock"].met is False  # 3.9x < 4x
    assert got["hot SKU durable, c=64: engine p99 below row lock's"].met is True
    assert got["hot SKU durable, c=64: engine server CPU per op"].met is True  # 25 <= 30
    assert got["hot SKU durable, c=256: engine server CPU per op"].met is False  # 35 > 30
    assert got["hot SKU durable, c=64: engine / row lock"].line().lstrip().startswith("short")


def test_http_targets_say_what_was_not_measured() -> None:
    http = {"16": {"matchday/haproxy": {**phase(0, 90, 700), "requests_per_s": 900},
                   "baseline": {**phase(0, 80, 400), "requests_per_s": 900}}}  # fmt: skip
    got = {t.name: t for t in http_targets(summarize([http], "baseline", "requests_per_s"))}
    assert got["add-to-cart, c=16: matchday/haproxy / baseline"].met is True  # 1.0x >= 1.0x
    assert got["add-to-cart, c=64: matchday/haproxy / baseline"].met is None
    assert got["add-to-cart, c=16: matchday/haproxy p99 below baseline's"].met is False
    assert got["add-to-cart, c=16: matchday/haproxy server CPU per op"].met is False  # 700
    assert got["add-to-cart, c=64: matchday/haproxy / baseline"].line().lstrip().startswith("-")


BUDGET = {
    "http matchday/haproxy c=16": {SERVER_TOTAL: 1500.0, "replica:shop": 600.0, "shards": 300.0,
                                   "postgres": 400.0, "haproxy": 100.0, "ray:gcs": 20.0,
                                   "load generator": 200.0, "ray": 80.0, "replicas": 600.0},
    "http baseline c=16": {SERVER_TOTAL: 900.0, "baseline app": 500.0, "postgres": 400.0},
}  # fmt: skip


def test_the_budget_checks_the_server_total_and_only_roles_worth_10_percent_of_it() -> None:
    roles = checked_roles(BUDGET["http matchday/haproxy c=16"])
    # 10% of 1,500 us is 150 us: haproxy (100) and ray:gcs (20) are left out; aggregates too.
    assert roles == [SERVER_TOTAL, "load generator", "postgres", "replica:shop", "shards"]
    # Over HTTP the load generator is the benchmark's client, not the system: not checked.
    http = checked_roles(BUDGET["http matchday/haproxy c=16"], "http matchday/haproxy c=16")
    assert http == [SERVER_TOTAL, "postgres", "replica:shop", "shards"]


def test_a_3x_replica_regression_is_caught_at_the_smoke_tests_limit_and_noise_is_not() -> None:
    measured = {
        "http matchday/haproxy c=16": {SERVER_TOTAL: 2700.0, "replica:shop": 1800.0,
                                       "shards": 390.0, "postgres": 300.0,
                                       "load generator": 260.0},
        "http baseline c=16": {SERVER_TOTAL: 600.0, "baseline app": 300.0, "postgres": 4000.0},
    }  # fmt: skip
    found = compare(BUDGET, measured, SMOKE_LIMIT)
    over = [(f.entry, f.role) for f in found if f.over]
    # The replica tripled (3.0x > 2.5x); the total grew 1.8x, shards 1.3x (contention): fine.
    # A baseline cheaper than its budget (a faster machine) tightens nothing.
    assert over == [("http matchday/haproxy c=16", "replica:shop")]
    # A baseline's role 10x over is printed for reference, never a failure.
    base = [f for f in found if f.entry == "http baseline c=16"]
    assert base and all(f.reference and not f.over for f in base)
    assert "ref" in base[0].line()


def test_on_a_slower_machine_the_plain_design_of_the_same_run_scales_what_is_allowed() -> None:
    replica_3x = {SERVER_TOTAL: 2700.0, "replica:shop": 1800.0, "shards": 390.0,
                  "postgres": 300.0}  # fmt: skip
    # The FastAPI baseline of the same run cost 1.8x its budget: every process pays more on
    # this machine, and the replica is allowed 1.8x more; at 3.0x it is still 1.67x of that.
    slow = {"http matchday/haproxy c=16": replica_3x, "http baseline c=16": {SERVER_TOTAL: 1620.0}}
    found = compare(BUDGET, slow, SMOKE_LIMIT)
    assert not [f for f in found if f.over]
    replica = next(f for f in found if f.role == "replica:shop")
    assert replica.scale == pytest.approx(1.8) and replica.ratio == pytest.approx(3.0 / 1.8)
    assert "machine 1.80x" in replica.line()
    # Without the plain design in the run nothing is scaled: the budget as recorded.
    alone = compare(BUDGET, {"http matchday/haproxy c=16": replica_3x}, SMOKE_LIMIT)
    assert [f.role for f in alone if f.over] == ["replica:shop"]


def test_a_slower_machine_probe_scales_the_engine_and_a_faster_one_tightens_nothing() -> None:
    budget = {"inventory engine c=64": {SERVER_TOTAL: 50.0, "shards": 20.0}}
    measured = {"inventory engine c=64": {SERVER_TOTAL: 150.0, "shards": 40.0}}
    # The same run on a machine whose probe took 1.7x as long: 3.0x is 1.76x of what is allowed.
    slow = compare(budget, measured, SMOKE_LIMIT, probes={"inventory": (19_000.0, 32_300.0)})
    assert all(f.scale == pytest.approx(1.7) for f in slow) and not [f for f in slow if f.over]
    fast = compare(budget, measured, SMOKE_LIMIT, probes={"inventory": (19_000.0, 9_500.0)})
    assert [f.role for f in fast if f.over] == [SERVER_TOTAL]  # 3.0x: caught as recorded
    # A run or a budget without a probe: nothing is scaled.
    assert {f.scale for f in compare(budget, measured, SMOKE_LIMIT, probes={})} == {1.0}


def test_the_machine_probe_is_read_from_either_benchmarks_json() -> None:
    assert probe_of({"kind": "http", "machine": {"cpus": 2, "probe_us": 19_400.5}}) == 19_400.5
    assert probe_of({"meta": {"machine": {"probe_us": 19_000.0}}}) == 19_000.0
    assert probe_of({"kind": "http", "machine": {"cpus": 2}}) == 0.0
    assert 0 < machine_probe(rounds=1) < 10_000_000


def test_the_machine_line_names_the_cpu_and_the_probe() -> None:
    # Two hosts of one kind differ (docs/performance-history.md, "2026-12-05, late night"):
    # each benchmark says which it ran on, as /proc/cpuinfo names it.
    model = cpu_model()
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []  # fmt: skip
    assert model == (names[0] if names else model) and model
    assert machine_line(2, "AMD EPYC", 15_204.4) == "2 CPUs (AMD EPYC), pure-Python probe 15.2 ms"


def test_the_engine_is_not_scaled_by_the_row_lock() -> None:
    budget = {"inventory engine c=64": {SERVER_TOTAL: 50.0},
              "inventory row lock c=64": {SERVER_TOTAL: 300.0}}  # fmt: skip
    measured = {"inventory engine c=64": {SERVER_TOTAL: 150.0},
                "inventory row lock c=64": {SERVER_TOTAL: 600.0}}  # fmt: skip
    [engine] = [f for f in compare(budget, measured, SMOKE_LIMIT) if not f.reference]
    assert engine.scale == 1.0 and engine.over


def test_a_figure_over_the_limit_only_by_its_tick_resolution_error_is_not_a_regression() -> None:
    budget = {"inventory engine c=64": {SERVER_TOTAL: 100.0, "shards": 60.0}}
    measured = {"inventory engine c=64": {SERVER_TOTAL: 400.0, "shards": 200.0}}
    # 66 reserves on a starved machine: +-830 us of tick error on the total, +-250 on shards.
    noisy = {"inventory engine c=64": {SERVER_TOTAL: 830.0, "shards": 250.0}}
    assert not [f for f in compare(budget, measured, SMOKE_LIMIT, noisy) if f.over]
    # The same figures from 10,000 reserves (+-6 us): both are regressions.
    precise = {"inventory engine c=64": {SERVER_TOTAL: 6.0, "shards": 2.0}}
    over = [f.role for f in compare(budget, measured, SMOKE_LIMIT, precise) if f.over]
    assert over == [SERVER_TOTAL, "shards"]


def test_entries_read_the_medians_net_of_idle_from_a_benchmarks_json() -> None:
    figures = {
        "kind": "http",
        "summary": summary_json(summarize(RUNS, "row lock", "reserves_per_s")),
        "idle_cores": {"matchday/haproxy": {"ray:controller": {"median": 0.1}}},
    }
    per_op, _, idle = entries(figures)
    assert per_op["http engine c=64"][SERVER_TOTAL] == 30
    assert idle == {"http matchday/haproxy idle": {"ray:controller": 0.1}}


async def test_a_bounded_wait_says_it_is_waiting_then_names_the_phase_when_it_stalls() -> None:
    said: list[str] = []
    with pytest.raises(Stalled) as info:
        async with bounded(said.append, "recovery", "2,000 reserves", 0.3, lambda: "5 acked",
                           every_s=0.1):  # fmt: skip
            await asyncio.sleep(10)
    message = str(info.value)
    assert message.startswith("recovery: no progress within 0.3 s while waiting for 2,000 reserves")
    assert message.endswith("5 acked")
    assert said and all("still waiting for 2,000 reserves" in s for s in said)


async def test_a_bounded_wait_that_finishes_in_time_raises_nothing() -> None:
    async with bounded(print, "phase", "nothing", 5.0):
        await asyncio.sleep(0)


def test_the_blocking_wait_calls_on_stall_to_unblock_its_body_and_raises_stalled() -> None:
    release = threading.Event()
    said: list[str] = []
    stalled = r"c=16: no progress within 0\.3 s while waiting for the client"
    with (
        pytest.raises(Stalled, match=stalled),
        bounded_sync(said.append, "c=16", "the client", 0.3, release.set, every_s=0.1),
    ):
        if not release.wait(10):
            raise AssertionError("on_stall never ran")
        raise RuntimeError("the client was killed")  # what the body sees after on_stall
    assert said


def test_budget_check_reads_files_and_fails_past_the_limit(tmp_path: Path) -> None:
    from bench.budget import check

    budget = tmp_path / "budget.json"
    budget.write_text(json.dumps({"recorded": {}, "per_op_us": {"http engine c=64": {
        SERVER_TOTAL: 10.0, "shards": 5.0}}, "idle_cores": {}}))  # fmt: skip
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"kind": "http",
                               "summary": summary_json(summarize(RUNS, "row lock",
                                                                 "reserves_per_s"))}))  # fmt: skip
    assert check([run], 1.5, budget) == 1  # 30 us against 10
    assert check([run], 3.5, budget) == 0


def inventory_phase(rate: float, shards_us: float, engine: bool) -> dict[str, Any]:
    p = {**phase(rate, 50, shards_us * 2), "max_ms": 60.0, "errors_in_window": {}}
    p[NET] = {**p[NET], "shards": shards_us}
    if engine:
        p["durability"] = {
            "acknowledged": 10,
            "postgres_reserved": 10,
            "held_reservation_rows": 10,
            "journal_rows": 10,
            "ok": True,
        }
        p["batching"] = {"mutations_per_actor_call": 20.0, "mutations_per_transaction": 20.0}
    else:
        p["check"] = {"ok": True}
    return p  # fmt: skip


def test_the_inventory_report_gives_medians_over_rounds_and_the_target_lines() -> None:
    from bench.inventory.report import finish, report

    rounds = [
        {"64": {"engine": inventory_phase(rate, us, True),
                "row_lock": inventory_phase(100, 0, False),
                "redis_lua": inventory_phase(1000, 0, False)}}
        for rate, us in ((300, 40.0), (500, 60.0), (400, 50.0))
    ]  # fmt: skip
    results: dict[str, Any] = {
        "hot_sku": {"runs": rounds, "idle": [{"cores": {"shards": 0.02}}] * 3}
    }
    finish(results)
    assert results["summary"]["64"]["engine"]["ratio"] == {
        "median": 4.0, "min": 3.0, "max": 5.0, "runs": 3,
    }  # fmt: skip
    assert results["summary"]["64"]["engine"][NET]["shards"]["median"] == 50.0
    text = report(results)
    assert "c=64: engine/row-lock 4.00x [3.00-5.00], engine/Redis-Lua 0.40x" in text
    assert "50.0 [40.0-60.0]" in text  # the shards' net CPU per reserve over the rounds
    assert "pass   hot SKU durable, c=64: engine / row lock: 4.00x [3.00-5.00]" in text
    assert "-      hot SKU durable, c=256: engine / row lock: not measured" in text
