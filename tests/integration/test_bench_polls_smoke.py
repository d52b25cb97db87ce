"""The polls benchmark still runs end to end, and its invariants hold under a vote storm.

Checks structure and invariants only (both phases ran, every accepted vote stored once in
PostgreSQL after the drain, no vote touched the inventory engine, no oversell); timings and
ratios are never asserted. Tiny phases: the Ray stack's start and stop take most of the time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_the_quick_polls_benchmark_runs_and_votes_never_reach_the_engine(tmp_path: Path) -> None:
    out = tmp_path / "polls.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHDAY_")}
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.polls", "--quick", "--seconds", "1", "--warmup", "0.5",
            "--idle-seconds", "0.5", "--concurrency", "2", "--votes-per-s", "50", "--polls", "2",
            "--streams", "2", "--json", str(out),
        ],
        capture_output=True, text=True, timeout=240, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
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
    assert "| b: + vote storm |" in done.stdout
