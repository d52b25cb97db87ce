"""The HTTP benchmark still runs end to end, and every acknowledged add-to-cart is durable.

Checks correctness only (durability, output that parses); throughput is never asserted.
One ingress mode and tiny phases keep it near a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_the_quick_http_benchmark_runs_and_every_acknowledged_add_is_durable(
    tmp_path: Path,
) -> None:
    out = tmp_path / "http.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHDAY_")}
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.http", "--quick", "--seconds", "1", "--warmup", "0.5",
            "--concurrency", "4", "--ingress", "haproxy", "--json", str(out),
        ],
        capture_output=True, text=True, timeout=240, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["ok"] is True
    phases = [figures["systems"]["haproxy"]["4"], figures["baseline"]["4"]]
    for phase in phases:
        assert phase["durability"]["ok"] is True
        assert phase["ok_total"] > 0
        assert phase["errors_total"] == 0
    assert "| 4 | matchday/haproxy |" in done.stdout
