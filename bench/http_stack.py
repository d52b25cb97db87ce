"""The systems ``bench.http`` and ``bench.polls`` measure, as processes they start, watch and
stop, or find running.

- :class:`~cluster.stack_process.Stack`: ``matchday run`` (``cluster.cli``) in a subprocess, on
  the benchmark's PostgreSQL and Redis, with one ingress mode. Exactly what a newcomer runs.
- :class:`Attached`: a ``matchday run`` already running (``--attach``), found as every
  ``matchday`` command finds it: MATCHDAY_* and ``<data_dir>/stack.json``. Never stopped here.
- :class:`Baseline`: ``bench.baseline_app`` under uvicorn, in a subprocess.
- :func:`servers`: the PostgreSQL and Redis a benchmark writes to and whose CPU it counts:
  embedded ones of its own, or the attached stack's.

Where their CPU goes, per process role, is :mod:`matchday.ops.cpu_roles`.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

from cluster.stack_process import LOOPBACK, ROOT, clean_env, free_port, stop_process
from matchday.embedded import start_servers
from matchday.ops.server_pids import postmaster_pid, server_pids
from matchday.ops.stack_state import load_state
from matchday.settings import Settings
from matchday.storage.db import migrate


class AttachError(Exception):
    """No running stack where the environment points, or not the one a benchmark needs."""


class Attached:
    """A running ``matchday run`` measured in place of a :class:`Stack` of the benchmark's own:
    the same ``base``, ``ingress``, ``pid()`` and ``with``, but nothing is started or stopped.

    Its settings are this environment's MATCHDAY_* completed from its ``stack.json`` (servers,
    routing, HTTP port, ingress: what the running stack decided). ``stack_pid`` is its root
    process, under which every Ray process and HAProxy is found (default: ``stack.json``'s).
    """

    def __init__(self, settings: Settings, stack_pid: int | None = None) -> None:
        state = load_state(settings) or {}
        update = {k: state[k] for k in ("database_url", "redis_url")
                  if not getattr(settings, k) and state.get(k)}  # fmt: skip
        update |= {k: state[k] for k in ("shards", "dedicated_shards", "http_port", "ingress")
                   if k in state}  # fmt: skip
        if not settings.secret_key.get_secret_value():
            # The key ``matchday run`` generated for this data directory (cluster/local.py):
            # the benchmarks sign shoppers' tokens the stack must accept.
            key = settings.data_dir / "secret_key"
            if key.exists():
                update["secret_key"] = SecretStr(key.read_text().strip())
        self.settings = settings.model_copy(update=update)
        pid = stack_pid or state.get("pid")
        if not pid or not self.settings.database_url or not self.settings.redis_url:
            raise AttachError(
                f"no running stack found in {settings.data_dir}: start `matchday run` (with "
                "MATCHDAY_DATA_DIR pointing there), or set MATCHDAY_DATABASE_URL, "
                "MATCHDAY_REDIS_URL, MATCHDAY_HTTP_PORT and pass --stack-pid"
            )
        if self.settings.tls_certfile:
            raise AttachError("the benchmarks speak plain HTTP: attach to a stack without TLS")
        self.ingress: str = self.settings.ingress
        self.apps: list[str] | None = state.get("apps")
        host = self.settings.http_host
        host = LOOPBACK if host in ("0.0.0.0", "") else host  # noqa: S104 - a listen address
        self.base = f"http://{host}:{self.settings.http_port}"
        self._pid = int(pid)

    @classmethod
    def find(
        cls, stack_pid: int | None, apps: Iterable[str], ingress: Sequence[str] = ()
    ) -> Attached:
        """The stack this environment names; refused unless it serves ``apps`` (and, if any
        ``ingress`` is asked for, runs that one alone)."""
        stack = cls(Settings(), stack_pid)
        missing = sorted(set(apps) - set(stack.apps)) if stack.apps is not None else []
        if missing:
            raise AttachError(f"the running stack serves {stack.apps}, not {missing}: start it "
                              "with `matchday run --apps` naming them")  # fmt: skip
        if ingress and list(ingress) != [stack.ingress]:
            raise AttachError(f"the running stack's ingress is {stack.ingress}, not {ingress}")
        return stack

    def start(self, timeout_s: float = 0.0, say: Callable[[str], None] = print) -> Attached:
        say(f"  attached to the running {self.ingress} stack at {self.base} (pid {self._pid})")
        return self

    def pid(self) -> int:
        return self._pid

    def __enter__(self) -> Attached:
        return self

    def __exit__(self, *exc: object) -> None:
        """Not ours to stop."""

    def server_pids(self) -> dict[str, int | None]:
        """PostgreSQL's postmaster and redis-server, when they run on this machine."""
        return server_pids(self.settings.database_url, self.settings.redis_url)


@contextmanager
def servers(
    attached: Attached | None, work: Path
) -> Iterator[tuple[Settings, dict[str, int | None]]]:
    """The settings a benchmark writes its fixtures with, and its CPU roots ``postgres`` and
    ``redis``: the attached stack's, or embedded servers started in ``work`` (migrated, with a
    fresh secret key) and stopped on leaving."""
    if attached is not None:
        yield attached.settings, attached.server_pids()
        return
    db_url, redis_url, started = start_servers("", "", work / "servers")
    try:
        migrate(db_url)
        settings = Settings(database_url=db_url, redis_url=redis_url, data_dir=work,
                            secret_key=secrets.token_hex(24))  # fmt: skip
        roots = {"postgres": postmaster_pid(work / "servers" / "postgres" / "pgdata")}
        roots["redis"] = next((s.proc.pid for s in started if hasattr(s, "proc")), None)
        yield settings, roots
    finally:
        for server in reversed(started):
            server.stop()


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
                env=clean_env(),
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
            stop_process(self.proc, 20.0)

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Baseline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
