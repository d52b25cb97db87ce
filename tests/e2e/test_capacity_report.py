"""The capacity report runs stepped Locust load against the Serve stack and writes its
report, charts and step data (a bounded, loopback-only run: two short steps)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Served
from tests.e2e.test_surge_smoke import ROOT, surge_catalog

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG\r\n\x1a\n"


async def test_a_stepped_run_writes_a_report_with_charts_and_the_settings_used(
    served: Served, tmp_path: Path
) -> None:
    surge = await surge_catalog(served)
    env = {
        **os.environ,
        "MATCHDAY_LT_HOT_SKU": surge.hot,
        "MATCHDAY_LT_SKUS": ",".join(surge.regular),
        "MATCHDAY_LT_SLUGS": surge.prefix.lower(),
    }
    out = tmp_path / "capacity"
    done = subprocess.run(
        [
            sys.executable, "-m", "loadtests.capacity", "--host", served.base,
            "--users", "2", "4", "--step-s", "3", "--ramp-s", "1", "--out", str(out),
            "--data-dir", str(tmp_path),
        ],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "step 1/2" in done.stdout or "2 users" in done.stdout  # progress while it ran
    steps = json.loads((out / "steps.json").read_text())
    assert [s["users"] for s in steps] == [2, 4]
    assert all(s["requests"] > 0 for s in steps), steps
    for chart in ("throughput.png", "latency.png", "errors.png"):
        assert (out / chart).read_bytes()[:8] == PNG, chart
    report = (out / "report.md").read_text()
    # A row per step; on a busy machine the first may already be marked "(saturated)".
    assert all(re.search(rf"^\| {n}( \(saturated\))? \|", report, re.M) for n in (2, 4)), report
    assert "Shop" in report  # the replica settings used, from serve_config.yaml
