"""The processes of one `matchday run`, recorded in its data directory (ADR 0020).

A run killed with SIGKILL (the OOM killer, a hard stop after a slow one) cleans nothing up.
Ray's node processes die with it (Ray starts them with PR_SET_PDEATHSIG); Redis and
PostgreSQL (a daemon) outlive it, and so does HAProxy (a child of a Ray worker) unless the
raylet or its worker got to end it first, and they keep their ports and sockets. The next
start of the same data directory finds them here and ends them; a stop that ran out of
time ends them too.

Only this data directory's processes are ever considered: those recorded in
``processes.json`` whose pid *and* start time still match, the postmaster named in its
PostgreSQL lock file, and HAProxy processes whose command line reads a config file in the
stack's own HAProxy folder (``cluster.serving.haproxy_folder``, unique per data directory).
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

BOOK = "processes.json"
# psutil's start times are jiffies since boot turned into seconds; the same process always
# reads the same value, a recycled pid a later one.
_SAME_START_S = 0.05
OWNER = "matchday run"


@dataclass(frozen=True)
class Entry:
    role: str
    pid: int
    started: float


class ProcessBook:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / BOOK

    def entries(self) -> list[Entry]:
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        return [Entry(**e) for e in raw if isinstance(e, dict)]

    def record(self, role: str, pid: int | None, *, replace: bool = False) -> None:
        """Add a process (``replace``: instead of the ones recorded in this role)."""
        if pid is None:
            return
        try:
            started = psutil.Process(pid).create_time()
        except psutil.Error:
            return
        kept = [e for e in self.entries() if not (replace and e.role == role)]
        self._write([*kept, Entry(role, pid, started)])

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def _write(self, entries: list[Entry]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(e) for e in entries], indent=1))
        tmp.replace(self.path)

    def owner(self) -> psutil.Process | None:
        """The `matchday run` that recorded these, if it is still running."""
        for e in self.entries():
            if e.role == OWNER:
                return _same(e)
        return None


def _same(e: Entry) -> psutil.Process | None:
    try:
        proc = psutil.Process(e.pid)
        if abs(proc.create_time() - e.started) > _SAME_START_S:
            return None  # the pid was recycled: someone else's process
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


def _haproxy(folder: Path) -> list[psutil.Process]:
    prefix = str(folder) + os.sep
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            name, cmdline = proc.info["name"] or "", proc.info["cmdline"] or []
        except psutil.Error:
            continue
        if name == "haproxy" and any(arg.startswith(prefix) for arg in cmdline):
            found.append(proc)
    return found


def _postmaster(pgdata: Path) -> psutil.Process | None:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        proc = psutil.Process(pid)
        cmdline = proc.cmdline()
    except (OSError, ValueError, psutil.Error):
        return None
    # The lock file outlives a kill -9; its pid may be someone else's by now.
    return proc if str(pgdata) in cmdline else None


def leftovers(
    data_dir: Path, haproxy_folder: Path, *, exclude: set[int] | None = None
) -> dict[int, tuple[str, psutil.Process]]:
    """pid: (what, process) of every process of this data directory still running."""
    skip = {os.getpid(), *(exclude or set())}
    found: dict[int, tuple[str, psutil.Process]] = {}
    for e in ProcessBook(data_dir).entries():
        proc = _same(e)
        if proc is not None and e.role != OWNER:
            found[proc.pid] = (e.role, proc)
    for proc in _haproxy(haproxy_folder):
        found[proc.pid] = ("haproxy", proc)
    postmaster = _postmaster((data_dir / "postgres" / "pgdata").resolve())
    if postmaster is not None:
        found[postmaster.pid] = ("postgres", postmaster)
    return {pid: v for pid, v in found.items() if pid not in skip}


def describe(procs: dict[int, tuple[str, psutil.Process]]) -> str:
    return ", ".join(f"{what} (pid {pid})" for pid, (what, _) in sorted(procs.items()))


def end(procs: dict[int, tuple[str, psutil.Process]], *, grace_s: float = 5.0) -> list[int]:
    """Stop them: SIGTERM (a postmaster SIGINT, its fast shutdown), SIGKILL after ``grace_s``.
    Returns the pids that had to be killed."""
    for what, proc in procs.values():
        try:
            proc.send_signal(signal.SIGINT if what == "postgres" else signal.SIGTERM)
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs([p for _, p in procs.values()], timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(alive, timeout=grace_s)
    return [p.pid for p in alive]
