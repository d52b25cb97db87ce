"""CPU time of a running matchday stack, per process role, and what it costs per operation.

psutil only (no Ray import): the benchmarks (``bench/``) and the capacity planner's
``measure`` step read the same figures from the same processes.

- :func:`role`: the role of a process, from its title (Ray sets ``ray::<ActorClass>`` on its
  workers): ``haproxy``, ``replica:<app>`` (one role per Serve deployment), ``shards``,
  ``postgres``, ``redis`` and the Ray roles ``ray:gcs``, ``ray:raylet``, ``ray:dashboard``,
  ``ray:controller``, ``ray:proxy``, ``ray:publisher`` (the outbox relay) and ``ray:other``
  (idle workers, agents, the driver, any other actor).
- :func:`cpu_sample`: the CPU seconds so far of every process under some root pids, each with
  its role, and the machine's busy and stolen CPU.
- :func:`cpu_seconds` / :func:`cores_used`: what each role used between two samples.
- :func:`per_op_us` / :func:`net_per_op_us`: CPU microseconds per operation, gross, and net of
  the idle burn measured on the same stack with no traffic, plus the aggregates
  ``ray``, ``replicas`` and ``server total`` (every role except the load generator).
- :func:`per_op_error_us`: how far those figures can be off from the clock-tick resolution
  of per-process CPU time alone (10 ms on Linux): large when few operations were measured.

Why per operation: throughput on a shared 2-core machine is noise, but the CPU one operation
costs each process holds up under contention and carries over to a cluster (issue 12).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import psutil  # type: ignore[import-untyped]  # no stubs: every value is converted on read

LOAD_GENERATOR = "load generator"
HAPROXY = "haproxy"
SHARDS = "shards"
POSTGRES = "postgres"
REDIS = "redis"
BASELINE = "baseline app"
REPLICA = "replica:"
RAY = "ray:"
RAY_OTHER = "ray:other"
# Aggregates over roles, added by :func:`totals`.
RAY_TOTAL = "ray"
REPLICAS_TOTAL = "replicas"
SERVER_TOTAL = "server total"
AGGREGATES = (RAY_TOTAL, REPLICAS_TOTAL, SERVER_TOTAL)
# cores_used's keys that are the machine, not a role of ours.
MACHINE = "machine"
FOREIGN = "foreign"
STEAL = "steal"
NOT_ROLES = (MACHINE, FOREIGN, STEAL)

# Per-process CPU time comes in clock ticks (USER_HZ: 100 a second on Linux).
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01

# Auto-detected role by process title prefix (Ray's ``ray::<ActorClass>[.method]`` titles).
_PREFIXES = (
    ("ray::InventoryShard", SHARDS),
    ("ray::EventPublisher", "ray:publisher"),
    ("ray::ServeController", "ray:controller"),
    ("ray::ProxyActor", "ray:proxy"),
    ("ray::HAProxyManager", "ray:proxy"),
    ("ray::DashboardAgent", "ray:dashboard"),
    ("ray-dashboard-", "ray:dashboard"),
    ("gcs_server", "ray:gcs"),
    ("raylet", "ray:raylet"),
    ("haproxy", HAPROXY),
    ("postgres", POSTGRES),
    ("redis-server", REDIS),
)


def role(title: str) -> str:
    """The role of a process whose title (``name`` or ``cmdline`` joined) is ``title``."""
    base = title.strip()
    if base.startswith("ray::ServeReplica:"):
        return replica_role(base)
    for prefix, found in _PREFIXES:
        if base.startswith(prefix):
            return found
    if "ray/dashboard/dashboard.py" in title or "ray/dashboard/agent.py" in title:
        return "ray:dashboard"
    return RAY_OTHER


def replica_role(title: str) -> str:
    """``ray::ServeReplica:<app>:<Deployment>[.method]`` -> ``replica:<app>`` when the
    deployment is the app's own (``shop``/``Shop``), else ``replica:<app>/<Deployment>``."""
    parts = title.split(":", 4)  # "ray", "", "ServeReplica", app, deployment
    app = parts[3] if len(parts) > 3 else "?"
    deployment = parts[4].split(".", 1)[0].split()[0] if len(parts) > 4 and parts[4] else "?"
    if deployment.lower() == app.lower():
        return f"{REPLICA}{app}"
    return f"{REPLICA}{app}/{deployment}"


def _title(proc: psutil.Process) -> str:
    name = str(proc.name())
    with contextlib.suppress(psutil.Error):
        cmdline = [str(c) for c in proc.cmdline()]
        if cmdline and cmdline[0].startswith(("ray::", "ray-dashboard-")):
            return " ".join(cmdline)
        if name in ("python", "python3") or name.startswith("python3."):
            return " ".join(cmdline) or name
    return name


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds so far, per process (keyed by pid and start time: pids are reused)."""

    at: float  # time.monotonic()
    procs: dict[tuple[int, float], tuple[str, float]] = field(default_factory=dict)
    busy: float = 0.0  # the machine's busy CPU seconds (idle, iowait and steal excluded)
    steal: float = 0.0


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_sample(
    roots: Mapping[str, int | None], labels: Mapping[int, str] | None = None
) -> CpuSample:
    """CPU seconds of every process under ``roots``, each with its role.

    A root named ``"auto"`` (or ``"stack"``) has each of its processes classified by
    :func:`role`; any other name is the role of its whole tree. ``labels`` gives single pids a
    role whatever their tree (the benchmark driver's own pid is its load generator).
    """
    labels = labels or {}
    procs: dict[tuple[int, float], tuple[str, float]] = {}
    for name, pid in roots.items():
        if pid is None:
            continue
        for proc in _tree(pid):
            with contextlib.suppress(psutil.Error), proc.oneshot():
                times = proc.cpu_times()
                if proc.pid in labels:
                    group = labels[proc.pid]
                elif name in ("auto", "stack"):
                    group = role(_title(proc))
                else:
                    group = name
                key = (int(proc.pid), float(proc.create_time()))
                procs[key] = (group, float(times.user) + float(times.system))
    machine = psutil.cpu_times()
    steal = float(getattr(machine, "steal", 0.0))
    idle = float(machine.idle) + float(getattr(machine, "iowait", 0.0))
    busy = float(sum(machine)) - idle - steal
    return CpuSample(time.monotonic(), procs, busy, steal)


def cpu_seconds(before: CpuSample, after: CpuSample) -> dict[str, float]:
    """CPU seconds each role used between two samples (a process born since counts from 0;
    one gone since is lost: sample around windows in which no process ends)."""
    used: dict[str, float] = {}
    for key, (group, cpu) in after.procs.items():
        start = before.procs.get(key, (group, 0.0))[1]
        used[group] = used.get(group, 0.0) + max(0.0, cpu - start)
    return used


def cores_used(before: CpuSample, after: CpuSample) -> dict[str, float]:
    """Cores (CPU seconds per second) per role between two samples, most first; then
    ``machine`` (all busy CPU), ``foreign`` (busy CPU not ours: other load) and ``steal``."""
    wall = max(after.at - before.at, 1e-9)
    used = cpu_seconds(before, after)
    out = {g: round(v / wall, 3) for g, v in sorted(used.items(), key=lambda kv: -kv[1])}
    machine = (after.busy - before.busy) / wall
    out[MACHINE] = round(machine, 3)
    out[FOREIGN] = round(max(0.0, machine - sum(used.values()) / wall), 3)
    out[STEAL] = round((after.steal - before.steal) / wall, 3)
    return out


def totals(by_role: Mapping[str, float]) -> dict[str, float]:
    """``by_role`` with the aggregates: ``ray`` (every ``ray:`` role), ``replicas`` (every
    ``replica:`` role) and ``server total`` (every role but the load generator)."""
    roles = {k: v for k, v in by_role.items() if k not in NOT_ROLES and k not in AGGREGATES}
    out = dict(roles)
    out[RAY_TOTAL] = sum(v for k, v in roles.items() if k.startswith(RAY))
    out[REPLICAS_TOTAL] = sum(v for k, v in roles.items() if k.startswith(REPLICA))
    out[SERVER_TOTAL] = sum(v for k, v in roles.items() if k != LOAD_GENERATOR)
    return out


def per_op_us(seconds: Mapping[str, float], ops: int) -> dict[str, float]:
    """CPU microseconds per operation for each role and aggregate; {} when nothing was done."""
    if ops <= 0:
        return {}
    return {k: round(v * 1e6 / ops, 1) for k, v in totals(seconds).items()}


def net_of_idle(
    seconds: Mapping[str, float], idle_cores: Mapping[str, float], window_s: float
) -> dict[str, float]:
    """CPU seconds per role minus what the role burns idle over the same window, never
    below 0 (a role that used less than its idle rate did no measurable work for the ops)."""
    return {
        k: max(0.0, v - idle_cores.get(k, 0.0) * window_s)
        for k, v in seconds.items()
        if k not in NOT_ROLES
    }


def net_per_op_us(
    seconds: Mapping[str, float], idle_cores: Mapping[str, float], window_s: float, ops: int
) -> dict[str, float]:
    """:func:`per_op_us` of :func:`net_of_idle`: the cost of the operations themselves."""
    return per_op_us(net_of_idle(seconds, idle_cores, window_s), ops)


def idle_cores(before: CpuSample, after: CpuSample) -> dict[str, float]:
    """Cores each role burns with no traffic (``before``/``after`` bracket an idle window)."""
    wall = max(after.at - before.at, 1e-9)
    return {k: round(v / wall, 4) for k, v in totals(cpu_seconds(before, after)).items()}


def per_op_error_us(before: CpuSample, after: CpuSample, ops: int) -> dict[str, float]:
    """Per role and aggregate: three standard deviations of its CPU per op from tick
    resolution alone. Each reading is truncated to a tick, so a difference errs by a
    triangular (-1, 1) tick (variance 1/6); over n processes, 3 * sqrt(n / 6) ticks."""
    if ops <= 0:
        return {}
    counts: dict[str, float] = {}
    for group, _ in after.procs.values():
        counts[group] = counts.get(group, 0.0) + 1.0
    return {
        k: round(3 * TICK_S * math.sqrt(n / 6) * 1e6 / ops, 1) for k, n in totals(counts).items()
    }


def roles_seen(samples: Iterable[CpuSample]) -> set[str]:
    return {group for s in samples for group, _ in s.procs.values()}
