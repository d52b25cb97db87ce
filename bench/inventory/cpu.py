"""CPU accounting of the inventory benchmark: ``CpuMeter`` snapshots the CPU time of the
benchmark's own processes (driver, shards, PostgreSQL, Redis, relay, Ray) and of the machine,
and turns two snapshots into cores used per group; ``fmt_cores`` prints them."""

from __future__ import annotations

import contextlib
import os
import time
from collections import defaultdict

import psutil

# -- CPU accounting ------------------------------------------------------------------------


# (monotonic time, machine busy CPU s, machine steal CPU s, {(pid, started): (group, CPU s)})
Snapshot = tuple[float, float, float, dict[tuple[int, float], tuple[str, float]]]


class CpuMeter:
    """CPU seconds per second of each process group over a window (see the docstring).

    Only the benchmark's own processes are counted: this process and its descendants (Ray's
    GCS, raylet and workers, the embedded Redis) and the embedded PostgreSQL's postmaster
    and its backends. ``other`` is whatever else kept the machine busy meanwhile.
    """

    GROUPS = ("driver", "shards", "postgres", "redis", "relay", "ray")

    def __init__(self) -> None:
        self.shard_pids: set[int] = set()
        self.me = os.getpid()
        self.postmaster: int | None = None

    def _group(self, pid: int, name: str, cmdline: list[str]) -> str:
        if pid == self.me:
            return "driver"
        if pid in self.shard_pids:
            return "shards"
        if name.startswith("postgres"):
            return "postgres"
        if name.startswith("redis-server"):
            return "redis"
        if "EventPublisher" in " ".join(cmdline):
            return "relay"
        return "ray"

    def _ours(self) -> list[psutil.Process]:
        procs: list[psutil.Process] = []
        for root in (self.me, self.postmaster):
            if root is None:
                continue
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(root)
                procs += [p, *p.children(recursive=True)]
        return procs

    def snapshot(self) -> Snapshot:
        procs: dict[tuple[int, float], tuple[str, float]] = {}
        for p in self._ours():
            with contextlib.suppress(psutil.Error), p.oneshot():
                times = p.cpu_times()
                group = self._group(p.pid, p.name(), p.cmdline())
                procs[(p.pid, p.create_time())] = (group, times.user + times.system)
        t = psutil.cpu_times()
        steal = getattr(t, "steal", 0.0)
        busy = sum(t) - t.idle - getattr(t, "iowait", 0.0) - steal
        return time.perf_counter(), busy, steal, procs

    @classmethod
    def cores(cls, before: Snapshot, after: Snapshot) -> dict[str, float]:
        wall = max(after[0] - before[0], 1e-9)
        used: defaultdict[str, float] = defaultdict(float)
        for key, (group, cpu) in after[3].items():
            prev = before[3].get(key)
            used[group] += cpu - (prev[1] if prev else 0.0)
        out = {g: round(used[g] / wall, 2) for g in cls.GROUPS}
        machine = (after[1] - before[1]) / wall
        out["other"] = round(max(0.0, machine - sum(used.values()) / wall), 2)
        out["machine"] = round(machine, 2)
        out["steal"] = round((after[2] - before[2]) / wall, 2)
        return out


def fmt_cores(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in cpu.items() if v >= 0.005 or k == "machine")
