"""The benchmark still runs end to end (its quick mode), and every phase stayed durable.

Checks correctness only; throughput figures are never asserted (README, performance).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_the_quick_benchmark_runs_and_every_acknowledged_reserve_is_durable(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHDAY_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench.inventory", "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    for phase in figures["hot_sku"].values():
        assert phase["engine"]["durability"]["ok"] is True
        assert phase["engine"]["errors_total"] == {}
        assert phase["row_lock"]["check"]["ok"] is True
    for phase in figures["scaling"]:
        assert phase["durability"]["ok"] is True
    assert figures["recovery"]["in_process"], "recovery was measured"
    assert "engine/row-lock" in done.stdout
