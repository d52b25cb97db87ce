"""What ``matchday capacity measure`` reads from the stack and the machine it runs on.

- :class:`Meter`: CPU seconds per process role (``matchday.ops.cpu_roles``), PostgreSQL's
  next transaction id (it moves only for transactions that write) and WAL position, and
  Redis's command counter, read together at the edges of a window.
- :func:`machine`, :func:`software`, :func:`processes`: what the profile records about where
  it was measured (the servers' pids: ``matchday.ops.server_pids``).
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from matchday.capacity.costs import Window
from matchday.capacity.profile import Machine, Processes, Software
from matchday.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Target:
    settings: Settings
    host: str
    roots: dict[str, int | None]
    labels: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reading:
    cpu: Any  # cpu_roles.CpuSample
    next_xid: int
    wal_bytes: int
    redis_cmds: int


class Meter:
    """Reads CPU per role, PostgreSQL's next transaction id and WAL position, Redis's counter."""

    def __init__(self, target: Target) -> None:
        import psycopg
        import redis

        self.target = target
        self.pg = psycopg.connect(target.settings.database_url, autocommit=True)
        self.redis = redis.Redis.from_url(target.settings.redis_url)

    def read(self) -> Reading:
        from matchday.ops.cpu_roles import cpu_sample

        row = self.pg.execute(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
        ).fetchone()
        assert row is not None
        cmds = int(self.redis.info("stats")["total_commands_processed"])
        return Reading(cpu_sample(self.target.roots, self.target.labels), row[0], row[1], cmds)

    def window(self, before: Reading, after: Reading) -> Window:
        from matchday.ops.cpu_roles import FOREIGN, STEAL, cores_used, cpu_seconds

        cores = cores_used(before.cpu, after.cpu)
        return Window(
            seconds=after.cpu.at - before.cpu.at,
            cpu_s=cpu_seconds(before.cpu, after.cpu),
            pg_write_xacts=after.next_xid - before.next_xid,
            pg_wal_bytes=after.wal_bytes - before.wal_bytes,
            redis_cmds=after.redis_cmds - before.redis_cmds,
            foreign_cores=cores.get(FOREIGN, 0.0),
            steal_cores=cores.get(STEAL, 0.0),
        )

    def close(self) -> None:
        self.pg.close()
        self.redis.close()


def titled(root: int, prefix: str) -> list[int]:
    import psutil

    found = []
    try:
        procs = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    except psutil.Error:
        return []
    for p in procs:
        try:
            if " ".join(p.cmdline()).startswith(prefix):
                found.append(p.pid)
        except psutil.Error:
            continue
    return found


def machine() -> Machine:
    import psutil

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return Machine(cores=os.cpu_count() or 1, cpu_model=model,
                   memory_bytes=int(psutil.virtual_memory().total),
                   platform=platform.platform())  # fmt: skip


def software(settings: Settings) -> Software:
    commit = ""
    if (ROOT / ".git").exists():
        # Fixed arguments, our own repository: which commit was measured.
        done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"],  # noqa: S603, S607
                              capture_output=True, text=True, check=False)  # fmt: skip
        commit = done.stdout.strip()
    gateway = settings.payment_gateway or (
        "stripe" if settings.stripe_api_key.get_secret_value() else "test"
    )
    return Software(
        matchday=metadata.version("matchday"), commit=commit, ray=metadata.version("ray"),
        python=platform.python_version(),
        settings={
            "shards": settings.shards, "dedicated_shards": settings.dedicated_shards,
            "ingress": settings.ingress, "client_in_flight": settings.client_in_flight,
            "max_batch": settings.max_batch, "payment_gateway": gateway,
        },
    )  # fmt: skip


def processes(sample: Any) -> Processes:
    import psutil

    count: dict[str, int] = {}
    rss: dict[str, float] = {}
    for (pid, _), (role, _cpu) in sample.procs.items():
        try:
            mb = psutil.Process(pid).memory_info().rss / 2**20
        except psutil.Error:
            continue
        count[role] = count.get(role, 0) + 1
        rss[role] = rss.get(role, 0.0) + mb
    return Processes(count=count, rss_mb={r: round(rss[r] / count[r], 1) for r in count})
