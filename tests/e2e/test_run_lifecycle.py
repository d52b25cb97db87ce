"""Stopping `matchday run` takes a bounded time, also when Ctrl-C reaches its whole process
group, and leaves nothing running; a run killed with SIGKILL leaves HAProxy, Redis and
PostgreSQL behind, and the next start of the same data directory ends them and comes up on
the same ports (issue 13 item 15, ADR 0020). The runs have Ray's token authentication on.
Before the second is stopped, its PostgreSQL and Redis are killed under shoppers' load and
healed by it (tests/e2e/outage_checks.py), and an operator attaches to it with what it
printed (tests/e2e/attach_checks.py): each of those on a stack of its own cost the suite
30-60 s to start.

Only processes of this test's own data directory are looked at (cluster.processes).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest

from cluster.processes import ProcessBook, leftovers
from cluster.serving import haproxy_folder
from tests.e2e.attach_checks import attaches_with_only_the_printed_variables, token_settings
from tests.e2e.outage_checks import LIMITS, heals_kill_9_under_load
from tests.e2e.run_stack import (
    INGRESS_APPS,
    ROOT,
    run_env,
    stack_settings,
    start_until_up,
    stop_run,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

# What is stopped and left behind is Ray, Serve, HAProxy and the servers, whatever the
# number of apps, and each app costs a start ~7 s of CPU: the two the outage's shoppers use.
APPS = INGRESS_APPS
# A hang detector, not a target: a stop takes ~10 s here (ADR 0020); the never ended.
STOP_BOUND_S = 120


def ours(scratch: Path) -> dict[int, str]:
    data = (scratch / "data").resolve()
    return {pid: what for pid, (what, _) in leftovers(data, haproxy_folder(data)).items()}


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def ports(settings: dict[str, str]) -> list[int]:
    names = ("MATCHDAY_HTTP_PORT", "RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT")
    return [int(settings[n]) for n in names]


def haproxy_ports(pid: int) -> set[int]:
    found = set()
    for proc in psutil.Process(pid).children(recursive=True):
        try:
            if proc.name() == "haproxy":
                found |= {c.laddr.port for c in proc.net_connections("tcp") if c.status == "LISTEN"}
        except psutil.Error:
            continue
    return found


def listening(pid: int, port: int) -> None:
    deadline = time.monotonic() + 240
    while port not in haproxy_ports(pid):
        assert time.monotonic() < deadline, f"HAProxy of {pid} never listened on {port}"
        time.sleep(1)


def stops_on_ctrl_c_to_its_group(
    run: subprocess.Popen[bytes], scratch: Path, settings: dict[str, str]
) -> None:
    """Ctrl-C to the run's whole process group (what a terminal does) stops everything within
    STOP_BOUND_S, while a shopper's keep-alive connection stays open, and frees its ports."""
    port = int(settings["MATCHDAY_HTTP_PORT"])
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as client:
        assert client.get("/api/catalog/healthz").status_code == 200
        assert ours(scratch), "the running stack's processes are not found"
        started = time.monotonic()
        os.killpg(run.pid, signal.SIGINT)
        assert run.wait(STOP_BOUND_S) == 0
        took = time.monotonic() - started
    log = (scratch / "run.log").read_text()
    assert "stopped" in log, log[-2000:]  # the first run was killed: this is the second
    assert ours(scratch) == {}
    assert all(port_free(p) for p in ports(settings)), ports(settings)
    print(f"stopped in {took:.1f} s")


def test_a_killed_runs_leftovers_are_ended_by_the_next_start_which_stops_on_ctrl_c() -> None:
    # One test, two starts: each start of `matchday run` costs 40-70 s of the suite.
    scratch = Path(tempfile.mkdtemp(prefix="matchday-killed-"))
    settings = stack_settings("haproxy", **token_settings(scratch), **LIMITS)
    stats = int(settings["RAY_SERVE_HAPROXY_STATS_PORT"])
    first = start_until_up(scratch, *APPS, new_session=True, **settings)
    try:
        listening(first.pid, stats)  # HAProxy starts once Serve's routes reach its manager
        # SIGKILL, as a hard stop after a slow one, or the OOM killer, does. Ray's node
        # processes die with the run (PR_SET_PDEATHSIG); HAProxy survives unless its
        # manager or the raylet gets to clean up its process group, which a SIGKILL of
        # both, first, rules out: the state, every time.
        raylet = next(
            e.pid for e in ProcessBook(scratch / "data").entries() if e.role == "ray raylet"
        )
        manager = next(
            p.ppid()
            for p in psutil.Process(first.pid).children(recursive=True)
            if p.name() == "haproxy"
        )
        for pid in (raylet, manager):
            os.kill(pid, signal.SIGKILL)
        first.kill()
        first.wait()
        time.sleep(3)
        left = ours(scratch)
        assert {"haproxy", "postgres", "redis"} <= set(left.values()), left
        assert not port_free(stats)  # what made the next start fail

        second = start_until_up(scratch, *APPS, new_session=True, after=1, **settings)
        try:
            log = (scratch / "run.log").read_text()
            assert "left running:" in log and all(f"(pid {pid})" in log for pid in left), log
            assert not any(psutil.pid_exists(pid) and pid in ours(scratch) for pid in left)
            listening(second.pid, stats)
            # --apps: its apps are served, and only they.
            assert "Apps        catalog, shop\n" in log, log[-2000:]
            base = f"http://127.0.0.1:{settings['MATCHDAY_HTTP_PORT']}"
            assert httpx.get(f"{base}/api/orders/healthz", timeout=30).status_code == 404
            # A third start while the second runs refuses, naming it, and touches nothing.
            third = subprocess.run(
                [sys.executable, "-m", "cluster.cli", "run", "--no-dashboard"],
                cwd=ROOT,
                env=run_env(scratch, **settings),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert third.returncode == 1
            assert f"already running (pid {second.pid})" in third.stdout + third.stderr
            assert stats in haproxy_ports(second.pid)
            port = int(settings["MATCHDAY_HTTP_PORT"])
            print(asyncio.run(heals_kill_9_under_load(scratch, second.pid, port)))
            attaches_with_only_the_printed_variables(scratch, settings)
            stops_on_ctrl_c_to_its_group(second, scratch, settings)
        finally:
            stop_run(second)
    finally:
        stop_run(first)
        shutil.rmtree(scratch, ignore_errors=True)
