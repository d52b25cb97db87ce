"""The HTTP and polls benchmarks still run end to end, both attached (``--attach``) to one
``matchday run`` stack that this module starts: one stack start and one embedded PostgreSQL and
Redis for the two, where each started its own (issue 14).

``bench.http``: every acknowledged add-to-cart is durable, every process role's CPU per add is
accounted, and none grew grossly past the CPU budget. ``bench.polls``: under a vote storm every
phase ran, every accepted vote is stored once in PostgreSQL after the drain, no vote reached the
inventory engine, nothing oversold. Correctness and structure only: throughput, latency and
ratios are never asserted. The budget check fails only past 2.5x the recorded CPU per add of a
role (bench/budget.json, docs/performance.md): contention does not produce that, a 3x
regression in the shop replica does. One ingress mode at the budget's concurrency (16).

The stack is the one ``bench.polls`` starts for itself (HAProxy; the shop, orders and polls
apps), on embedded servers of its own as each benchmark had: the polls checks count the engine's
whole journal, and the ``postgres`` role is the whole server's CPU, so no other test's actors
may use them. ``bench.polls`` runs first, on the fresh stack as on its own; ``bench.http`` then
measures the shop app with the orders and polls apps idle beside it (their replicas are roles
it accounts, net of their idle burn like every role's). Without ``--attach`` each benchmark
starts its own stack, as ``make perf`` runs ``bench.http``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import http as bench_http
from bench.budget import SMOKE_LIMIT, judge
from bench.costs import GROSS, NET
from bench.http_stack import servers
from bench.polls import APPS
from bench.watch import Stalled
from cluster.stack_process import Stack
from matchday.embedded import remove_tree
from matchday.ops.cpu_roles import LOAD_GENERATOR, SERVER_TOTAL

pytestmark = pytest.mark.integration

# Every role of the shared stack, the polls and orders apps' replicas included.
STACK_ROLES = {LOAD_GENERATOR, "haproxy", "replica:shop", "replica:orders",
               "replica:orders/Payments", "replica:polls", "shards", "postgres", "redis",
               "ray:gcs", "ray:raylet", "ray:controller", "ray:proxy", "ray:publisher"}  # fmt: skip
BASELINE_ROLES = {LOAD_GENERATOR, "baseline app", "postgres"}


# First: it needs no stack, and the module's stack then stops right after its last user.
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


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``matchday run --apps shop,orders,polls`` with the HAProxy ingress, as the benchmarks
    start it, on embedded servers of its own; stopped, and its files removed, after the module.
    No secret key is set: the run generates one in its data directory, where ``--attach``
    finds it as it would for anyone's ``matchday run``."""
    work = tmp_path_factory.mktemp("bench-stack")
    try:
        with (
            servers(None, work) as (settings, _),
            Stack("haproxy", settings.database_url, settings.redis_url, work, apps=APPS) as s,
        ):
            yield s
    finally:
        remove_tree(work)


def attached(
    module: str, stack: Stack, out: Path, timeout_s: float, *args: str
) -> tuple[str, dict[str, Any]]:
    """``python -m <module> --attach ... --json out`` in the stack's environment: its stdout
    and the figures it wrote."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--attach", *args, "--json", str(out)],
        capture_output=True, text=True, timeout=timeout_s, env=stack.env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures: dict[str, Any] = json.loads(out.read_text())
    return done.stdout, figures


def test_the_quick_polls_benchmark_runs_and_votes_never_reach_the_engine(
    stack: Stack, tmp_path: Path
) -> None:
    # The stack's root process from its stack.json here; the HTTP test passes --stack-pid.
    stdout, figures = attached(
        "bench.polls", stack, tmp_path / "polls.json", 240,
        "--quick", "--seconds", "1", "--warmup", "0.5", "--idle-seconds", "0.5",
        "--concurrency", "2", "--votes-per-s", "50", "--polls", "2", "--streams", "2",
    )  # fmt: skip
    phases, checks = figures["phases"], figures["checks"]
    for name in ("a", "b", "c"):  # checkout alone, under the storm, beside the CPU burner
        assert phases[name]["in_window"] > 0
        assert phases[name]["errors"] == {}
    assert phases["b"]["votes_per_s"] > 0
    assert checks["ok"] is True
    # Every accepted vote is in poll_votes exactly once, after the write-behind drain.
    assert checks["votes_accepted"] > 0
    assert checks["votes_stored"] == checks["distinct_voters"] == checks["votes_accepted"]
    assert 0 < checks["pg_transactions_storing_votes"] <= checks["votes_stored"]
    # Votes never reach the inventory engine: no journal row while only votes ran, none on
    # the SKUs the poll options name, and the same journal rows per checkout in every phase.
    assert checks["journal_rows_votes_alone"] == 0
    assert checks["poll_skus_journal_rows"] == 0
    assert len(set(checks["journal_per_checkout"].values())) == 1
    # No oversell: units sold = paid orders = paid answers, nothing left reserved.
    assert checks["sold"] == checks["paid_orders"] == checks["paid_answers"] > 0
    assert checks["reserved"] == 0
    assert "| b: + vote storm |" in stdout


def test_the_quick_http_benchmark_runs_and_every_acknowledged_add_is_durable(
    stack: Stack, tmp_path: Path
) -> None:
    stdout, figures = attached(
        "bench.http", stack, tmp_path / "http.json", 300,
        "--stack-pid", str(stack.pid()), "--quick", "--concurrency", "16", "--ingress", "haproxy",
    )  # fmt: skip
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
    assert "| 16 | matchday/haproxy |" in stdout
    assert "issue 12 targets" in stdout
    # No role's CPU per add grew grossly past the budget (never a timing or a throughput).
    findings = judge(figures, SMOKE_LIMIT)
    assert any(f.entry == "http matchday/haproxy c=16" for f in findings), "not in the budget"
    over = [f.line() for f in findings if f.over]
    assert not over, "CPU per add past 2.5x its budget:\n" + "\n".join(over)
