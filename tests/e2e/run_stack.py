"""`matchday run` in a subprocess, for e2e tests that need a stack of their own (an ingress
mode or servers other than the shared ``served`` fixture's).

Every stack gets its own free ports (HTTP, HAProxy's stats and Prometheus frontends): other
stacks, of other tests or other people, run on the same machine.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from cluster.stack_process import stop_process
from tests.e2e.certs import self_signed
from tests.e2e.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
START_S = 420  # a cold start on a loaded 2-core machine; a hang past this is a failure
STOP_S = 90


def run_env(scratch: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MATCHDAY_", "RAY_"))}
    env.update(
        {
            "MATCHDAY_DATA_DIR": str(scratch / "data"),  # run --fresh empties it: files beside
            "RAY_AUTH_MODE": "disabled",  # a private, loopback-only cluster (ADR 0004)
            **settings,  # may turn token authentication back on (tests/e2e/attach_checks.py)
        }
    )
    return env


def start_run(
    scratch: Path, *flags: str, fresh: bool = True, new_session: bool = False, **settings: str
) -> subprocess.Popen[bytes]:
    """Start `matchday run`; its output goes to scratch/run.log (appended)."""
    log = scratch / "run.log"
    with log.open("a") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cluster.cli",
                "run",
                *(["--fresh"] if fresh else []),
                "--no-dashboard",
                *flags,
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=run_env(scratch, **settings),
            start_new_session=new_session,
        )


def wait_up(run: subprocess.Popen[bytes], log: Path, *, after: int = 0) -> None:
    """Until the run prints its banner (the ``after``-th one, for a restart in one log)."""
    deadline = time.monotonic() + START_S
    while log.read_text().count("Stop: Ctrl-C") <= after:
        assert run.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(1)


# Ray gives its node 30 s to register (ray/_private/node.py, not configurable); with load
# averages of 30-50 from parallel test runs on 2 cores it sometimes does not. Only this
# failure is retried: the run then exits, and its Ray processes die with it.
RAY_SLOW_START = "The current node timed out during startup"


def start_until_up(
    scratch: Path, *flags: str, after: int = 0, tries: int = 3, **kwargs: Any
) -> subprocess.Popen[bytes]:
    """start_run, then wait_up; again if Ray's node was too slow to start."""
    log = scratch / "run.log"
    for attempt in range(tries):
        run = start_run(scratch, *flags, **kwargs)
        try:
            wait_up(run, log, after=after)
            return run
        except AssertionError:
            text = log.read_text()
            if attempt + 1 == tries or RAY_SLOW_START not in text or run.poll() is None:
                stop_run(run)
                raise
            log.write_text(text.replace(RAY_SLOW_START, "(retried) Ray node start timed out"))
    raise AssertionError("unreachable")


def stop_run(run: subprocess.Popen[bytes]) -> None:
    stop_process(run, STOP_S)


@contextmanager
def matchday_run(scratch: Path, *flags: str, **settings: str) -> Iterator[tuple[Path, int]]:
    """Run it with these settings until it is up; (its log, its pid). Stopped on exit."""
    run = start_until_up(scratch, *flags, **settings)
    try:
        yield scratch / "run.log", run.pid
    finally:
        stop_run(run)


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


@dataclass
class RunStack:
    """A running `matchday run` of a test session, and what a test needs to reach it."""

    scratch: Path
    pid: int
    port: int
    settings: dict[str, str]
    cert: Path | None = None  # its self-signed certificate, when it speaks HTTPS

    @property
    def base(self) -> str:
        return f"{'https' if self.cert else 'http'}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What a client verifies this stack's certificate with (httpx's ``verify``)."""
        return ssl.create_default_context(cafile=str(self.cert)) if self.cert else True

    @property
    def log(self) -> Path:
        return self.scratch / "run.log"

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads((self.scratch / "data" / "stack.json").read_text())
        return state

    def deploy_extra(self, *apps: dict[str, Any]) -> None:
        """Deploy serve_config.yaml plus ``apps`` on this stack (from a process of its own:
        this one may be the driver of the test session's Ray)."""
        state = self.state()
        env = run_env(self.scratch, **self.settings, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
        done = subprocess.run(
            [sys.executable, "-m", "tests.e2e.deploy_into", json.dumps(state), json.dumps(apps)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=START_S,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


def stack_settings(ingress: str, **extra: str) -> dict[str, str]:
    return {
        "MATCHDAY_INGRESS": ingress,
        "MATCHDAY_HTTP_PORT": str(free_port()),
        # Other stacks on this machine may hold HAProxy's default 8404 and 9101.
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
        **extra,
    }


# What the tests that share an ingress stack reach: a stack of two apps starts in a fraction
# of the eight's time (each app is a build task and a replica process of its own).
INGRESS_APPS = ("--apps", "catalog,shop")


@contextmanager
def run_stack(ingress: str, *flags: str, tls: bool = False, **extra: str) -> Iterator[RunStack]:
    """``tls``: HTTPS only, with a self-signed certificate (the Python proxy's, ADR 0012)."""
    scratch = Path(tempfile.mkdtemp(prefix=f"matchday-{ingress}-"))
    cert = None
    if tls:
        (scratch / "tls").mkdir()
        cert, key = self_signed(scratch / "tls")  # beside data/, which --fresh empties
        extra = {**extra, "MATCHDAY_TLS_CERTFILE": str(cert), "MATCHDAY_TLS_KEYFILE": str(key)}
    settings = stack_settings(ingress, **extra)
    try:
        with matchday_run(scratch, *flags, **settings) as (_, pid):
            yield RunStack(scratch, pid, int(settings["MATCHDAY_HTTP_PORT"]), settings, cert)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# Small anonymous buckets (burst 2, refilled once in 100 s), so that whose bucket a request
# drew from shows; 127.0.0.9 plays a load balancer the ingress trusts (ADR 0020).
SHARED = {
    "MATCHDAY_RATE_LIMIT_PER_S": "0.01",
    "MATCHDAY_RATE_LIMIT_BURST": "2",
    "MATCHDAY_TRUSTED_PROXIES": "127.0.0.9",
}
