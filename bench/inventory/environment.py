"""Phase 0 of the inventory benchmark: ``Environment.describe`` records the machine, the
PostgreSQL and Redis settings, the git commit and the engine settings measured, with the
helpers that read the data directory's filesystem, the CPU model, the git state and the
embedded PostgreSQL's postmaster pid."""

from __future__ import annotations

import platform
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench.costs import cpu_model, machine_line, machine_probe
from bench.inventory.harness import BenchBase
from bench.provenance import git_state
from matchday.ops.server_pids import postmaster_pid


class Environment(BenchBase):
    # -- 0. environment --------------------------------------------------------------------

    async def describe(self) -> None:
        import ray
        import redis.asyncio as aioredis

        s = self.base
        pg_settings = {}
        for name in (
            "server_version",
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
            "shared_buffers",
            "max_connections",
        ):
            pg_settings[name] = await self.sql(f"SHOW {name}")
        r = aioredis.Redis.from_url(s.redis_url)
        try:
            info = await r.info()
            appendfsync = (await r.config_get("appendfsync")).get("appendfsync")
        finally:
            await r.aclose()
        data_dir = s.data_dir.resolve()
        fs = _filesystem(data_dir)
        model = cpu_model()
        meta: dict[str, Any] = {
            "run_id": self.run_id,
            "started": datetime.now().isoformat(timespec="seconds"),
            "argv": sys.argv,
            "config": {
                "seconds": self.cfg.seconds,
                "warmup_s": self.cfg.warmup,
                "concurrency": self.cfg.concurrency,
                "clients": self.cfg.clients,
                "quick": self.cfg.quick,
                "memory_skus": self.cfg.memory_skus,
                "held_reservations": self.cfg.held_reservations,
                "analyze": self.cfg.analyze,
            },
            "machine": {
                "cpus": psutil.cpu_count(),
                "cpu_model": model,
                "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "probe_us": machine_probe(),  # what bench.budget scales by
                "ray": ray.__version__,
                "psycopg": psycopg.__version__,
                "data_dir": str(data_dir),
                "data_dir_filesystem": fs,
            },
            "postgres": {**pg_settings, "embedded": not self.external["postgres"]},
            "redis": {
                "version": info.get("redis_version"),
                "appendonly": info.get("aof_enabled"),
                "appendfsync": appendfsync,
                "embedded": not self.external["redis"],
            },
            "git": git_state(),
            "engine_settings": {
                "max_batch": s.max_batch,
                "client_in_flight": s.client_in_flight,
                "shard_cache_size": s.shard_cache_size,
            },
        }
        self.results["meta"] = meta
        machine = meta["machine"]
        self.say(
            f"machine: {machine_line(machine['cpus'], model, machine['probe_us'])}, Python "
            f"{machine['python']}, Ray {ray.__version__}; PostgreSQL "
            f"{pg_settings['server_version']} (fsync={pg_settings['fsync']}, "
            f"synchronous_commit={pg_settings['synchronous_commit']}), Redis "
            f"{info.get('redis_version')} (appendfsync={appendfsync}); data on {fs}"
        )
        git = meta["git"]
        if git:
            changed = ", ".join(x[3:] for x in git["changed"]) or "none"
            self.say(f"engine code: commit {git['commit'][:12]}; uncommitted changes: {changed}")


def _filesystem(path: Path) -> str:
    best = ""
    fstype = "unknown"
    for part in psutil.disk_partitions(all=True):
        mp = part.mountpoint
        if (str(path) == mp or str(path).startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
            best, fstype = mp, part.fstype
    return f"{fstype} ({best or '?'})"


def _postmaster_pid(servers: list[Any]) -> int | None:
    pgdata = next((s.pgdata for s in servers if getattr(s, "pgdata", None) is not None), None)
    return None if pgdata is None else postmaster_pid(pgdata)
