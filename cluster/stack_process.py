"""``matchday run`` in a subprocess: started as a newcomer starts it, waited for, stopped.

:class:`Stack` is what ``cluster.browser.demo_stack`` (``matchday screenshots --start``) and
the benchmarks (``bench.http_stack``) start. It lives here, not in ``bench/``, because the
product CLI never imports ``bench/`` (issue 14); ``bench/`` imports it from here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

LOOPBACK = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent


class Stalled(RuntimeError):
    """A phase made no progress within its time limit."""

    def __init__(self, phase: str, waiting_for: str, limit_s: float, progress: str = "") -> None:
        self.phase = phase
        detail = f"; {progress}" if progress else ""
        super().__init__(
            f"{phase}: no progress within {limit_s:g} s while waiting for {waiting_for}{detail}"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without MATCHDAY_* and RAY_*, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MATCHDAY_", "RAY_"))}
    env.update(extra)
    return env


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 90.0) -> None:
    """SIGINT, then SIGKILL if it has not exited after ``grace_s``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Stack:
    """``matchday run --no-dashboard --no-seed`` with ``ingress``; stop() with SIGINT.

    ``apps`` (``matchday run --apps``): only the Serve apps a benchmark reaches; each other
    one would cost the start ~7 s of CPU and burn some while the benchmark measures.
    """

    def __init__(
        self, ingress: str, database_url: str, redis_url: str, work: Path, apps: str | None = None
    ) -> None:
        self.ingress = ingress
        self.apps = apps
        self.port = free_port()
        self.base = f"http://{LOOPBACK}:{self.port}"
        self.data_dir = work / f"stack-{ingress}"
        self.log = work / f"stack-{ingress}.log"
        self.env = clean_env(
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

    def start(self, timeout_s: float = 300.0, say: Callable[[str], None] = print) -> Stack:
        apps = ["--apps", self.apps] if self.apps else []
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own CLI, no shell
                [sys.executable, "-m", "cluster.cli", "run", "--no-dashboard", "--no-seed", *apps],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started = time.monotonic()
        deadline, next_word = started + timeout_s, started + 15
        while b"Stop: Ctrl-C" not in self.log.read_bytes():
            if self.proc.poll() is not None:
                self.stop()
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the {self.ingress} stack did not start:\n{tail}")
            if time.monotonic() > deadline:
                self.stop()
                last = self.log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
                raise Stalled(
                    f"starting the {self.ingress} stack", f"'matchday run' to say it is up "
                    f"(its log {self.log} ends: {last[0][:200]!r})", timeout_s,
                )  # fmt: skip
            if time.monotonic() > next_word:  # never silent: say where the start-up is
                next_word += 15
                last = self.log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
                say(f"  the {self.ingress} stack is still starting after "
                    f"{time.monotonic() - started:.0f} s: {last[0][:160]}")  # fmt: skip
            time.sleep(0.5)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Stack:
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
