"""`matchday run` in a subprocess, for e2e tests that need a stack of their own (an ingress
mode or servers other than the shared ``served`` fixture's)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def matchday_run(scratch: Path, *flags: str, **settings: str) -> Iterator[tuple[Path, int]]:
    """Run it with these settings until it is up; (its log, its pid). Stopped on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MATCHDAY_", "RAY_"))}
    env.update(
        {
            "MATCHDAY_DATA_DIR": str(scratch / "data"),  # run --fresh empties it: files beside
            "RAY_AUTH_MODE": "disabled",  # a private, loopback-only cluster (ADR 0004)
            **settings,  # may turn token authentication back on (tests/e2e/test_attach.py)
        }
    )
    log = scratch / "run.log"
    with log.open("w") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "cluster.cli", "run", "--fresh", "--no-dashboard", *flags],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 240
        while "Stop: Ctrl-C" not in log.read_text():
            assert run.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        yield log, run.pid
    finally:
        run.send_signal(signal.SIGINT)
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait()


def processes(pid: int, prefix: str) -> dict[int, str]:
    """pid: name of the processes under ``pid`` whose name starts with ``prefix``."""
    found = {}
    for proc in psutil.Process(pid).children(recursive=True):
        try:
            name = proc.name()
        except psutil.NoSuchProcess:
            continue
        if name.startswith(prefix):
            found[proc.pid] = name
    return found
