"""Keeps the embedded PostgreSQL and Redis of ``matchday run`` running.

A server that dies under the stack (``kill -9``, the OOM killer) is started again, the way it
was started the first time (``EmbeddedPostgres.start``, which also handles running as root),
with a growing pause between failed attempts: a PostgreSQL killed with ``kill -9`` cannot
start while its old backends still hold the shared memory, which takes them a moment.
Every death, restart and failed attempt is logged and counted (``matchday_embedded_restarts``,
``matchday_embedded_up``). A thread of its own; nothing here needs Ray.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from matchday.metrics import EMBEDDED_RESTARTS, EMBEDDED_UP, NOOP, Metrics

log = logging.getLogger(__name__)

# Checked twice a second: a dead server costs ~0.5 s of detection on top of its own start
# (~1 s for PostgreSQL with crash recovery, ~0.2 s for Redis, measured here), and a check
# is a signal-0 and a file read.
POLL_S = 0.5
FIRST_RETRY_S = 0.5
MAX_RETRY_S = 30.0
# Up this long after a restart, a server is well again: its next death starts the pauses
# from FIRST_RETRY_S instead of doubling on.
STABLE_S = 60.0


class Supervised(Protocol):
    name: str

    def alive(self) -> bool: ...

    def restart(self) -> None: ...

    def pid(self) -> int | None: ...


@dataclass
class _Watch:
    server: Supervised
    failures: int = 0  # failed attempts since it died
    deaths: int = 0
    down_since: float | None = None
    next_try: float = 0.0
    up_since: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(
        self,
        servers: Sequence[Supervised],
        *,
        metrics: Metrics = NOOP,
        clock: Callable[[], float] = time.monotonic,
        on_restart: Callable[[Supervised], None] | None = None,
    ) -> None:
        self._watches = [_Watch(s, up_since=clock()) for s in servers]
        self._metrics = metrics
        self._clock = clock
        self._on_restart = on_restart
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for w in self._watches:
            self._metrics.set(EMBEDDED_UP, 1.0, {"server": w.server.name})

    def restarts(self) -> dict[str, int]:
        """Deaths seen per server (each followed by restarts until one worked)."""
        return {w.server.name: w.deaths for w in self._watches}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="matchday-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop supervising (first thing when the stack stops: its servers are about to go)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5 * POLL_S + 90)  # an attempt under way is bounded

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            self.check()

    def check(self) -> None:
        """One round: notice deaths, restart what is due. Public for tests."""
        for w in self._watches:
            if self._stop.is_set():
                return
            self._check(w)

    def _check(self, w: _Watch) -> None:
        now = self._clock()
        if w.down_since is None:
            if not w.server.alive():
                self._died(w, now)
            return
        if now >= w.next_try:
            self._try_restart(w)

    def _died(self, w: _Watch, now: float) -> None:
        # Dying again soon after a restart is a crash loop: pause longer each time.
        w.failures = w.failures + 1 if w.deaths and now - w.up_since < STABLE_S else 0
        w.deaths += 1
        w.down_since, w.next_try = now, now + _pause(w.failures)
        self._metrics.set(EMBEDDED_UP, 0.0, {"server": w.server.name})
        log.warning("%s is gone; restarting it in %.1f s", w.server.name, w.next_try - now)

    def _try_restart(self, w: _Watch) -> None:
        name = w.server.name
        try:
            w.server.restart()
        except Exception as exc:
            w.failures += 1
            w.next_try = self._clock() + _pause(w.failures)
            log.warning(
                "%s did not start (%s); next try in %.1f s", name, _short(exc), _pause(w.failures)
            )
            return
        assert w.down_since is not None
        down_for = self._clock() - w.down_since
        w.down_since, w.up_since = None, self._clock()
        self._metrics.inc(EMBEDDED_RESTARTS, 1.0, {"server": name})
        self._metrics.set(EMBEDDED_UP, 1.0, {"server": name})
        log.warning(
            "%s restarted (pid %s) %.1f s after it was seen gone", name, w.server.pid(), down_for
        )
        if self._on_restart is not None:
            self._on_restart(w.server)


def _pause(failures: int) -> float:
    return float(min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** min(failures, 16)))


def _short(exc: BaseException) -> str:
    """The last line of a failed start's stderr (pg_ctl says why there), else the error."""
    err = getattr(exc, "stderr", None)
    text = err.decode(errors="replace") if isinstance(err, bytes) else str(err or exc)
    lines = text.strip().splitlines()
    return lines[-1][:200] if lines else type(exc).__name__
