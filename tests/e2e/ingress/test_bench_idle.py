"""``python -m bench.idle`` finds a running stack from its state file and prints each role's
idle burn; without a stack it says how to start one (ADR 0030)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from cluster.serving import SERVE_ENV
from tests.e2e.run_stack import ROOT, RunStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def idle(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHDAY_")}
    return subprocess.run(
        [sys.executable, "-m", "bench.idle", "--settle", "0", "--seconds", "1", *args],
        cwd=ROOT, env={**env, "MATCHDAY_DATA_DIR": str(data_dir)}, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip


def test_idle_burn_per_role_of_a_running_stack(haproxy_run: RunStack) -> None:
    done = idle(haproxy_run.scratch / "data")
    assert done.returncode == 0, done.stderr
    rows = dict(line.rsplit(None, 2)[:2] for line in done.stdout.splitlines())
    assert {"replica:shop", "replica:catalog", "ray:controller", "shards", "the stack"} <= set(
        rows
    ), done.stdout
    assert float(rows["the stack"]) >= max(float(v) for r, v in rows.items() if r != "the stack")
    assert "1 s idle" in done.stderr  # progress says what it waits for


def test_without_a_stack_it_says_how_to_start_one(tmp_path: Path) -> None:
    done = idle(tmp_path)
    assert done.returncode == 2 and "matchday run" in done.stderr and not done.stdout


def test_serve_runs_with_matchdays_control_loop(haproxy_run: RunStack) -> None:
    [controller] = [
        p
        for p in psutil.Process(haproxy_run.pid).children(recursive=True)
        if " ".join(p.cmdline()).startswith("ray::ServeController")
    ]
    env = controller.environ()
    assert {k: env.get(k) for k in SERVE_ENV} == SERVE_ENV
