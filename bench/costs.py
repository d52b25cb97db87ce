"""CPU cost per operation in the benchmarks, and the medians over runs they print.

``bench.http`` and ``bench.inventory`` both: sample every role's CPU over an idle window
before their measured phases (:func:`idle_window`), bracket each measured window with two
samples (:func:`phase_cost`: cores used, CPU microseconds per acknowledged operation per role,
gross and net of the idle burn), repeat the system-vs-baseline pairs ``--runs`` times and
:func:`summarize` them: per concurrency and system the median (with min and max) of
throughput, p50, p99, the ratio to the baseline of the same run and each role's CPU per op.
The arithmetic per sample lives in :mod:`matchday.ops.cpu_roles`.
"""

from __future__ import annotations

import contextlib
import json
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matchday.ops.cpu_roles import (
    AGGREGATES,
    LOAD_GENERATOR,
    NOT_ROLES,
    REPLICA,
    CpuSample,
    cores_used,
    cpu_seconds,
    idle_cores,
    net_per_op_us,
    per_op_error_us,
    per_op_us,
)

GROSS = "cpu_us_per_op"
NET = "cpu_us_per_op_net"
ERROR = "cpu_us_per_op_error"  # tick resolution, 3 standard deviations (cpu_roles)
# Print order; replicas (one role per deployment) come after haproxy, unknown roles last.
ORDER = (
    LOAD_GENERATOR, "haproxy", REPLICA, "baseline app", "shards", "postgres", "redis",
    "ray:gcs", "ray:raylet", "ray:dashboard", "ray:controller", "ray:proxy", "ray:publisher",
    "ray:other", *AGGREGATES,
)  # fmt: skip


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``): hosts of the same kind differ, and CPU per
    operation moves with them (docs/performance-history.md, "2026-12-05, late night")."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_line(cpus: int | None, model: str, probe_us: float) -> str:
    """What a benchmark prints of its machine first: the CPU and the budget's probe."""
    return f"{cpus} CPUs ({model}), pure-Python probe {probe_us / 1000:.1f} ms"


def machine_probe(rounds: int = 5) -> float:
    """CPU microseconds of one fixed piece of pure-Python work (dicts, strings, JSON), the
    best of ``rounds``: how fast this machine runs the kind of work matchday's processes do.
    ``bench.budget`` allows a slower machine than the budget's as much more CPU per op. The
    best of five, in this thread's CPU time: other work on the machine barely moves it."""
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time()
        _probe_work()
        best = min(best, time.thread_time() - start)
    return round(best * 1e6, 1)


def _probe_work() -> int:
    n = 0
    for i in range(4_000):
        line = {"sku": f"SKU-{i % 97}", "qty": i % 7, "cart": f"cart-{i}", "at": i * 0.5}
        n += len(json.dumps(line)) + len(json.loads(json.dumps([line["sku"], i]))[0])
    return n


def phase_cost(
    before: CpuSample, after: CpuSample, ops: int, idle: Mapping[str, float]
) -> dict[str, Any]:
    """One measured window: cores per role, and CPU us per op per role, gross and net of
    ``idle`` (cores per role with no traffic; {} makes net equal gross)."""
    seconds = cpu_seconds(before, after)
    window = after.at - before.at
    return {
        "window_s": round(window, 3),
        "ops": ops,
        "cores_used": cores_used(before, after),
        GROSS: per_op_us(seconds, ops),
        NET: net_per_op_us(seconds, idle, window, ops),
        ERROR: per_op_error_us(before, after, ops),
    }


def idle_window(sample: Callable[[], CpuSample], seconds: float) -> dict[str, Any]:
    """Sample, wait ``seconds`` with no traffic, sample: the cores each role burns idle."""
    before = sample()
    time.sleep(seconds)
    after = sample()
    return {"seconds": round(after.at - before.at, 3), "cores": idle_cores(before, after)}


@dataclass(frozen=True)
class Spread:
    """A figure over runs: its median, min and max."""

    median: float
    lo: float
    hi: float
    n: int

    def fmt(self, digits: int = 1, unit: str = "") -> str:
        m = f"{self.median:,.{digits}f}{unit}"
        return m if self.n < 2 else f"{m} [{self.lo:,.{digits}f}-{self.hi:,.{digits}f}]"

    def json(self) -> dict[str, float]:
        return {"median": self.median, "min": self.lo, "max": self.hi, "runs": self.n}


def spread(values: Sequence[float]) -> Spread:
    if not values:
        return Spread(0.0, 0.0, 0.0, 0)
    return Spread(float(statistics.median(values)), min(values), max(values), len(values))


def spreads(per_run: Sequence[Mapping[str, float]]) -> dict[str, Spread]:
    """Per key, the spread over runs; a key missing from a run counts as 0 in it."""
    keys = {k for run in per_run for k in run}
    return {k: spread([run.get(k, 0.0) for run in per_run]) for k in keys}


Summary = dict[str, dict[str, dict[str, Any]]]  # concurrency -> system -> figure -> Spread


def summarize(
    runs: Sequence[Mapping[str, Mapping[str, Mapping[str, Any]]]], baseline: str, rate_key: str
) -> Summary:
    """``runs[r][c][system]`` (each a phase: ``rate_key``, ``p50_ms``, ``p99_ms``, GROSS, NET)
    -> ``[c][system]``: Spreads of rate, p50, p99, ratio to ``baseline`` in the same run, and
    each role's CPU per op (gross and net)."""
    out: Summary = {}
    for c in dict.fromkeys(c for run in runs for c in run):
        systems = dict.fromkeys(s for run in runs for s in run.get(c, {}))
        out[c] = {}
        for system in systems:
            phases = [
                (run[c][system], run[c].get(baseline)) for run in runs if system in run.get(c, {})
            ]
            rates = [p[rate_key] for p, _ in phases]
            ratios = [p[rate_key] / b[rate_key] for p, b in phases if b and b[rate_key] > 0]
            out[c][system] = {
                "rate": spread(rates),
                "p50_ms": spread([p["p50_ms"] or 0.0 for p, _ in phases]),
                "p99_ms": spread([p["p99_ms"] or 0.0 for p, _ in phases]),
                "ratio": spread(ratios) if ratios else None,
                GROSS: spreads([p.get(GROSS, {}) for p, _ in phases]),
                NET: spreads([p.get(NET, {}) for p, _ in phases]),
                ERROR: spreads([p.get(ERROR, {}) for p, _ in phases]),
            }
    return out


def summary_json(summary: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, Spread):
            return v.json()
        if isinstance(v, Mapping):
            return {k: conv(x) for k, x in v.items()}
        return v

    return {c: {s: conv(v) for s, v in per.items()} for c, per in summary.items()}


def ordered(roles: Iterable[str]) -> list[str]:
    """Roles in print order (see ORDER); replicas by name; unknown roles before aggregates."""

    def rank(r: str) -> tuple[int, str]:
        if r.startswith(REPLICA):
            return ORDER.index(REPLICA), r
        if r in ORDER:
            return ORDER.index(r), r
        return ORDER.index(AGGREGATES[0]) - 1, r

    return sorted((r for r in roles if r not in NOT_ROLES), key=rank)


def table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        out = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return (indent + "  ".join(out)).rstrip()

    return "\n".join([line(headers), indent + "  ".join("-" * w for w in widths), *map(line, rows)])


def cost_table(
    per_system: Mapping[str, Mapping[str, Any]], idle: Mapping[str, Mapping[str, Spread]]
) -> str:
    """Rows: roles; per system its net CPU us per op (median [min-max] over runs) and gross
    (median), then per ``idle`` column the idle burn in cores (median). Roles near 0 everywhere
    are left out."""
    nets = {s: v[NET] for s, v in per_system.items()}
    grosses = {s: v[GROSS] for s, v in per_system.items()}
    found = {r for v in [*nets.values(), *grosses.values(), *idle.values()] for r in v}
    headers = ["CPU us per op, by role"]
    for s in per_system:
        headers += [f"{s} net", "gross"]
    headers += list(idle)
    rows = []
    for r in ordered(found):
        cells = [got.get(r) for got in [*nets.values(), *grosses.values()]]
        idles = [col.get(r) for col in idle.values()]
        if all(x is None or x.hi < 0.05 for x in cells) and all(
            x is None or x.hi < 0.0005 for x in idles
        ):
            continue
        row = [r]
        for s in per_system:  # the net figure with its spread over runs; gross and idle bare
            net, gross = nets[s].get(r), grosses[s].get(r)
            row.append(net.fmt() if net is not None else "-")
            row.append(f"{gross.median:,.1f}" if gross is not None else "-")
        row += [f"{x.median:.3f}" if x is not None else "-" for x in idles]
        rows.append(row)
    return table(headers, rows)
