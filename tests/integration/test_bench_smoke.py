"""The inventory benchmark still runs end to end (its quick mode), every phase stayed
durable, every process role's CPU per reserve is accounted, and none grew grossly past the
CPU budget.

Checks correctness and structure only; throughput and latency are never asserted
(docs/performance.md). The budget check fails only past 2.5x the recorded CPU per reserve
of a role (bench/budget.json): contention does not produce that, a 3x regression does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.budget import SMOKE_LIMIT, judge
from bench.costs import GROSS, NET
from matchday.ops.cpu_roles import LOAD_GENERATOR, SERVER_TOTAL

pytestmark = pytest.mark.integration

ENGINE_ROLES = {LOAD_GENERATOR, "shards", "postgres", "redis", "ray:gcs", "ray:raylet",
                "ray:publisher", SERVER_TOTAL, "ray"}  # fmt: skip
# One concurrency and 1 s phases: a quarter of the smoke's time less, and every phase kind
# (the hot SKU against both baselines, scaling, memory, recovery) still runs.
QUICK = [sys.executable, "-m", "bench.inventory", "--quick", "--concurrency", "64",
         "--seconds", "1", "--warmup", "0.3", "--idle-seconds", "1"]  # fmt: skip


def test_the_quick_benchmark_runs_and_every_acknowledged_reserve_is_durable(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHDAY_")}
    done = subprocess.run(
        [*QUICK, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    [run] = figures["hot_sku"]["runs"]
    [idle] = figures["hot_sku"]["idle"]
    assert ENGINE_ROLES - {LOAD_GENERATOR} <= set(idle["cores"])
    # The servers were settled before the idle window and before each of the three phases,
    # and the upkeep's CPU is on record apart from the phases'.
    settled = figures["hot_sku"]["settle"]
    assert [s["label"].split(", ")[-1] for s in settled] == [
        "before the idle window", "before the engine", "before the row lock", "before Redis Lua"
    ]  # fmt: skip
    assert all(s["cpu_s"]["postgres"] >= 0 and s["seconds"] > 0 for s in settled), settled
    for c, phase in run.items():
        assert phase["engine"]["durability"]["ok"] is True
        assert phase["engine"]["errors_total"] == {}
        assert phase["row_lock"]["check"]["ok"] is True
        for system in ("engine", "row_lock", "redis_lua"):
            gross, net = phase[system][GROSS], phase[system][NET]
            assert set(gross) >= ENGINE_ROLES, f"c={c} {system}: {sorted(gross)}"
            assert all(v >= 0 for v in [*gross.values(), *net.values()])
            assert all(net[r] <= gross[r] for r in net)
            assert phase[system]["ops"] == phase[system]["acked_in_window"]
    for phase in figures["scaling"]:
        assert phase["durability"]["ok"] is True
    assert figures["recovery"]["in_process"], "recovery was measured"
    assert set(figures["summary"]) == set(run)
    measured = [t for t in figures["targets"] if t["measured"] != "not measured"]
    assert measured and all(t["met"] in (True, False) for t in measured)
    assert all(t["met"] is None for t in figures["targets"] if t not in measured)
    assert "engine/row-lock" in done.stdout
    assert "issue 12 targets" in done.stdout
    # No role's CPU per reserve grew grossly past the budget (never a timing or a throughput).
    findings = judge(figures, SMOKE_LIMIT)
    assert any(f.entry.startswith("inventory engine c=") for f in findings), "not in the budget"
    over = [f.line() for f in findings if f.over]
    assert not over, "CPU per reserve past 2.5x its budget:\n" + "\n".join(over)
