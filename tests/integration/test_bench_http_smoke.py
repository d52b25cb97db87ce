"""The HTTP benchmark still runs end to end, every acknowledged add-to-cart is durable, every
process role's CPU per add is accounted, and none grew grossly past the CPU budget.

Checks correctness and structure only (durability, output that parses, every role present,
every cost >= 0); throughput and latency are never asserted. The budget check fails only past
2.5x the recorded CPU per add of a role (bench/budget.json, docs/performance.md): contention
does not produce that, a 3x regression in the shop replica does. One ingress mode at the
budget's concurrency (16) keeps it near a minute.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench import http as bench_http
from bench.budget import SMOKE_LIMIT, judge
from bench.costs import GROSS, NET
from bench.watch import Stalled
from matchday.ops.cpu_roles import LOAD_GENERATOR, SERVER_TOTAL

pytestmark = pytest.mark.integration

STACK_ROLES = {LOAD_GENERATOR, "haproxy", "replica:shop", "shards", "postgres", "redis",
               "ray:gcs", "ray:raylet", "ray:controller", "ray:proxy", "ray:publisher"}  # fmt: skip
BASELINE_ROLES = {LOAD_GENERATOR, "baseline app", "postgres"}


def test_the_quick_http_benchmark_runs_and_every_acknowledged_add_is_durable(
    tmp_path: Path,
) -> None:
    out = tmp_path / "http.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHDAY_")}
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.http", "--quick", "--concurrency", "16",
            "--ingress", "haproxy", "--json", str(out),
        ],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["ok"] is True
    assert len(figures["runs"]) == 1
    run = figures["runs"][0]
    phases = {"matchday/haproxy": STACK_ROLES, "baseline": BASELINE_ROLES}
    for system, roles in phases.items():
        phase = run["phases"]["16"][system]
        assert phase["durability"]["ok"] is True
        assert phase["ok_total"] > 0
        assert phase["errors_total"] == 0
        assert phase["ops"] == phase["ok_in_window"] > 0
        gross, net = phase[GROSS], phase[NET]
        assert roles <= set(gross), f"{system}: roles missing from {sorted(gross)}"
        assert all(v >= 0 for v in [*gross.values(), *net.values()])
        assert all(net[r] <= gross[r] for r in net)
        assert gross[SERVER_TOTAL] >= gross["postgres"]
        idle = run["idle"][system]["cores"]
        assert roles - {LOAD_GENERATOR} <= set(idle)
        assert all(v >= 0 for v in idle.values())
    summary = figures["summary"]["16"]["matchday/haproxy"]
    assert summary["ratio"]["runs"] == 1
    assert {t["name"] for t in figures["targets"]} >= {
        "add-to-cart, c=16: matchday/haproxy / baseline",
        "add-to-cart, c=16: matchday/haproxy server CPU per op",
    }
    assert "| 16 | matchday/haproxy |" in done.stdout
    assert "issue 12 targets" in done.stdout
    # No role's CPU per add grew grossly past the budget (never a timing or a throughput).
    findings = judge(figures, SMOKE_LIMIT)
    assert any(f.entry == "http matchday/haproxy c=16" for f in findings), "not in the budget"
    over = [f.line() for f in findings if f.over]
    assert not over, "CPU per add past 2.5x its budget:\n" + "\n".join(over)


def test_a_phase_whose_server_never_answers_stalls_with_a_message_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A loopback listener that never answers (the kernel completes the handshakes, nothing
    reads): the client's phase is ended at its bound, with Stalled naming the phase and what
    it waited for."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        monkeypatch.setattr(bench_http, "SETUP_LIMIT_S", 1.0)
        monkeypatch.setattr(bench_http, "DRAIN_LIMIT_S", 1.0)
        args = bench_http.parse(["--quick", "--seconds", "0.5", "--warmup", "0.2"])
        base = f"http://127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(Stalled) as info:
            bench_http.run_client(base, "SKU", 2, args, {}, {}, "matchday/test c=2")
    assert str(info.value).startswith(
        "matchday/test c=2: no progress within 2.7 s while waiting for the load generator"
    )
    assert "last event from the client: started" in str(info.value)
