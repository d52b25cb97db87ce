"""A distributed Locust run (a master and two workers on loopback) against the Serve stack,
for when one load machine is not enough; its acknowledgements pass the audit."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtests.acks import read_acks
from loadtests.audit import run_audit, summary
from loadtests.audit_checks import Scope
from tests.e2e.conftest import Served
from tests.e2e.test_surge_smoke import ROOT, surge_catalog

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_master_with_two_workers_drives_load_and_nothing_is_lost(
    served: Served, tmp_path: Path
) -> None:
    surge = await surge_catalog(served)
    env = {
        **os.environ,
        "MATCHDAY_LT_HOT_SKU": surge.hot,
        "MATCHDAY_LT_SKUS": ",".join(surge.regular),
        "MATCHDAY_LT_SLUGS": surge.prefix.lower(),
        "MATCHDAY_LT_THINK_SCALE": "0.2",
        "MATCHDAY_LT_ACK_DIR": str(tmp_path / "acks"),
    }
    port = free_port()
    locust = [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "steady.py")]
    workers = [
        subprocess.Popen(
            [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        started = time.monotonic()
        master = subprocess.run(
            [
                *locust, "--master", "--master-bind-host", "127.0.0.1",
                "--master-bind-port", str(port), "--expect-workers", "2",
                "--headless", "-u", "6", "-r", "6", "-t", "8s", "--host", served.base,
                "--csv", str(tmp_path / "dist"), "--only-summary", "--loglevel", "WARNING",
            ],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
        assert master.returncode in (0, 1), master.stderr[-3000:]
        assert time.monotonic() - started < 80
    finally:
        for w in workers:
            w.terminate()
            w.wait(timeout=20)
    with (tmp_path / "dist_stats.csv").open() as f:
        total = next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")
    assert int(total["Request Count"]) > 20, total
    acks = list(read_acks([tmp_path / "acks"]))
    assert acks, "no add-to-cart was acknowledged"
    findings = run_audit(
        served.settings.database_url, [tmp_path / "acks"], Scope(f"{surge.prefix}-%")
    )
    assert all(f.ok for f in findings), summary(findings)
