"""The systems ``bench.http`` measures, as processes it starts, watches and stops.

- :class:`Stack`: ``matchday run`` (``cluster.cli``) in a subprocess, on the benchmark's
  PostgreSQL and Redis, with one ingress mode. Exactly what a newcomer runs.
- :class:`Baseline`: ``bench.baseline_app`` under uvicorn, in a subprocess.
- :func:`cpu_sample`: CPU seconds so far of every process involved, grouped by role, so the
  benchmark can say where the cores went during a measured window.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

LOOPBACK = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MATCHDAY_", "RAY_"))}
    env.update(extra)
    return env


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 90.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Stack:
    """``matchday run --no-dashboard --no-seed`` with ``ingress``; stop() with SIGINT."""

    def __init__(self, ingress: str, database_url: str, redis_url: str, work: Path) -> None:
        self.ingress = ingress
        self.port = free_port()
        self.base = f"http://{LOOPBACK}:{self.port}"
        self.data_dir = work / f"stack-{ingress}"
        self.log = work / f"stack-{ingress}.log"
        self.env = _clean_env(
            MATCHDAY_DATABASE_URL=database_url,
            MATCHDAY_REDIS_URL=redis_url,
            MATCHDAY_DATA_DIR=str(self.data_dir),
            MATCHDAY_INGRESS=ingress,
            MATCHDAY_HTTP_PORT=str(self.port),
            # Every worker is one shopper sending hundreds of adds a second: far past the
            # per-client bucket (20/s). The bucket is still consulted on every request.
            MATCHDAY_RATE_LIMIT_PER_S="1000000",
            MATCHDAY_RATE_LIMIT_BURST="1000000",
            # A private, loopback-only cluster, like the test suite's (ADR 0004).
            RAY_AUTH_MODE="disabled",
            # Other stacks on this machine may hold HAProxy's default 8404 and 9101.
            RAY_SERVE_HAPROXY_STATS_PORT=str(free_port()),
            RAY_SERVE_HAPROXY_METRICS_PORT=str(free_port()),
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 300.0) -> Stack:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cluster.cli", "run", "--no-dashboard", "--no-seed"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while b"Stop: Ctrl-C" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the {self.ingress} stack did not start:\n{tail}")
            time.sleep(0.5)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Baseline:
    """``python -m bench.baseline_app`` on a free loopback port."""

    def __init__(self, database_url: str, work: Path) -> None:
        self.port = free_port()
        self.base = f"http://{LOOPBACK}:{self.port}"
        self.database_url = database_url
        self.log = work / "baseline.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> Baseline:
        args = ["--database-url", self.database_url, "--port", str(self.port)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - this interpreter, our module
                [sys.executable, "-m", "bench.baseline_app", *args],
                cwd=ROOT,
                env=_clean_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=1):
                    return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(self.log.read_text(errors="replace")[-3000:]) from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc, 20.0)

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Baseline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def role(proc: psutil.Process) -> str:
    """The group a process's CPU is reported under."""
    name = str(proc.name())
    if name == "haproxy":
        return "haproxy"
    if name.startswith("ray::ProxyActor"):
        return "proxy"
    if name.startswith("ray::ServeReplica:shop"):
        return "shop replica"
    if name.startswith("ray::ServeReplica"):
        return "other replicas"
    if name.startswith("ray::InventoryS"):
        return "shards"
    if name.startswith(("postgres", "redis")):
        return name.split()[0].split("-")[0]
    return "ray"


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cpu_sample(roots: dict[str, int | None]) -> dict[str, Any]:
    """CPU seconds per pid (with its role) of every tree in ``roots``, and the machine's.

    A root's name is the role of its whole tree unless it is "stack", whose processes are
    grouped by :func:`role`; "postgres" and "redis" name the servers' own trees.
    """
    per_pid: dict[int, tuple[str, float]] = {}
    for name, pid in roots.items():
        if pid is None:
            continue
        for proc in _tree(pid):
            try:
                times = proc.cpu_times()
                group = role(proc) if name == "stack" else name
                per_pid[proc.pid] = (group, times.user + times.system)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    machine = psutil.cpu_times()
    idle = machine.idle + getattr(machine, "iowait", 0.0)
    return {
        "at": time.monotonic(),
        "pids": per_pid,
        "busy": sum(machine) - idle - getattr(machine, "steal", 0.0),
        "steal": getattr(machine, "steal", 0.0),
    }


def cores_used(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """Cores (CPU seconds per second) per group between two samples, plus the machine's."""
    seconds = after["at"] - before["at"]
    groups: dict[str, float] = {}
    for pid, (group, cpu) in after["pids"].items():
        start = before["pids"].get(pid, (group, 0.0))[1]
        groups[group] = groups.get(group, 0.0) + (cpu - start)
    out = {g: round(v / seconds, 2) for g, v in sorted(groups.items(), key=lambda kv: -kv[1])}
    ours = sum(groups.values()) / seconds
    out["machine"] = round((after["busy"] - before["busy"]) / seconds, 2)
    out["other"] = round(max(0.0, out["machine"] - ours), 2)
    out["steal"] = round((after["steal"] - before["steal"]) / seconds, 2)
    return {k: v for k, v in out.items() if v >= 0.005 or k in ("machine", "other")}
