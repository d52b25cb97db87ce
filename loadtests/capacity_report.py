"""The capacity report: per-step results, where it saturated, charts and the markdown page.

Saturation is the first step where any of these holds (the step before it is the capacity):
- p99 latency over the limit (``--p99-ms``, default 1000 ms: a fan waiting a second for
  add-to-cart is a fan reloading the page);
- errors (429, 503, 5xx, timeouts; not 409 sold-out) over ``--max-error`` (1%);
- throughput stopped growing: under 20% of the added users turned into added requests/s.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ADD_TO_CART = "/api/shop/carts/[cart]/items"
# Below this share of the extra load becoming extra throughput, the system is queueing.
GROWTH_FLOOR = 0.2


@dataclass
class StepResult:
    users: int
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    add_rps: float = 0.0
    add_p99_ms: float = 0.0
    replicas: dict[str, int] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def _num(row: dict[str, str], key: str) -> float:
    try:
        return float(row.get(key) or 0)
    except ValueError:  # "N/A" before the first answer
        return 0.0


def read_stats(csv_path: Path) -> dict[str, dict[str, str]]:
    """Locust's ``*_stats.csv``, keyed by request name ("Aggregated" for the total)."""
    if not csv_path.exists():
        return {}
    with csv_path.open(newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def step_result(users: int, csv_path: Path) -> StepResult:
    rows = read_stats(csv_path)
    total, add = rows.get("Aggregated", {}), rows.get(ADD_TO_CART, {})
    return StepResult(
        users=users,
        requests=int(_num(total, "Request Count")),
        failures=int(_num(total, "Failure Count")),
        rps=_num(total, "Requests/s"),
        p50_ms=_num(total, "50%"),
        p95_ms=_num(total, "95%"),
        p99_ms=_num(total, "99%"),
        add_rps=_num(add, "Requests/s"),
        add_p99_ms=_num(add, "99%"),
    )


def saturation(steps: list[StepResult], p99_ms: float, max_error: float) -> tuple[int, str] | None:
    """(index of the first saturated step, why), or None if every step was healthy."""
    for i, s in enumerate(steps):
        why = []
        if s.p99_ms > p99_ms:
            why.append(f"p99 {s.p99_ms:.0f} ms > {p99_ms:.0f} ms")
        if s.error_rate > max_error:
            why.append(f"errors {s.error_rate:.1%} > {max_error:.0%}")
        if i > 0 and s.users > steps[i - 1].users and steps[i - 1].rps > 0:
            prev = steps[i - 1]
            load_gain = s.users / prev.users - 1
            rps_gain = s.rps / prev.rps - 1
            if rps_gain < GROWTH_FLOOR * load_gain:
                why.append(
                    f"throughput {rps_gain:+.0%} for {load_gain:+.0%} users (stopped growing)"
                )
        if why:
            return i, "; ".join(why)
    return None


def charts(steps: list[StepResult], out: Path, saturated_at: int | None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    users = [s.users for s in steps]
    series: list[tuple[str, str, list[tuple[str, list[float]]]]] = [
        ("throughput.png", "requests/s", [("all", [s.rps for s in steps]),
                                           ("add-to-cart", [s.add_rps for s in steps])]),
        ("latency.png", "ms", [("p50", [s.p50_ms for s in steps]),
                               ("p95", [s.p95_ms for s in steps]),
                               ("p99", [s.p99_ms for s in steps])]),
        ("errors.png", "error rate %", [("errors", [100 * s.error_rate for s in steps])]),
    ]  # fmt: skip
    paths = []
    for name, ylabel, lines in series:
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        for label, values in lines:
            ax.plot(users, values, marker="o", label=label)
        if saturated_at is not None:
            ax.axvline(users[saturated_at], color="red", linestyle="--", label="saturated")
        ax.set_xlabel("users")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        paths.append(out / name)
    return paths


def settings_used(serve_config: Path, data_dir: Path) -> dict[str, Any]:
    """Replica and shard settings the run was made with, as a planner needs to read it."""
    import yaml

    config = yaml.safe_load(serve_config.read_text())
    deployments = {}
    for app in config.get("applications", []):
        for d in app.get("deployments", []):
            auto = d.get("autoscaling_config")
            replicas = (
                f"{auto.get('min_replicas', 1)}-{auto.get('max_replicas', 1)} (autoscaling,"
                f" target {auto.get('target_ongoing_requests', '?')} ongoing)"
                if auto
                else str(d.get("num_replicas", 1))
            )
            deployments[f"{app['name']}/{d['name']}"] = {
                "replicas": replicas,
                "max_ongoing_requests": d.get("max_ongoing_requests", "default"),
                "max_queued_requests": d.get("max_queued_requests", "default"),
            }
    state_path = data_dir / "stack.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    from matchday.settings import Settings

    s = Settings()  # this shell's MATCHDAY_* view; stack.json wins where it says more
    return {
        "shards": state.get("shards", s.shards),
        "dedicated_shards": state.get("dedicated_shards", s.dedicated_shards),
        "ingress": f"{s.ingress} (this shell's setting)",
        "cpus": os.cpu_count(),
        "deployments": deployments,
    }


def markdown(
    steps: list[StepResult],
    meta: dict[str, Any],
    used: dict[str, Any],
    p99_ms: float,
    max_error: float,
) -> str:
    sat = saturation(steps, p99_ms, max_error)
    out = [f"# Capacity report: {meta['scenario']}", ""]
    out.append(
        f"{meta['started']}, against {meta['host']}; {len(steps)} steps of {meta['step_s']} s"
        f" (after a {meta['ramp_s']} s ramp, not measured), think time x{meta['think_scale']}."
    )
    out.append("")
    if sat is None:
        out.append(f"**Not saturated** up to {steps[-1].users} users (p99 <= {p99_ms:.0f} ms,"
                   f" errors <= {max_error:.0%}, throughput still growing).")  # fmt: skip
    else:
        i, why = sat
        good = (
            f"the last healthy step was {steps[i - 1].users} users at {steps[i - 1].rps:.0f}"
            " requests/s"
            if i > 0
            else "no step was healthy"
        )
        out.append(f"**Saturated at {steps[i].users} users**: {why}; {good}.")
    out += ["", "| users | req/s | p50 ms | p95 ms | p99 ms | errors | add-to-cart/s |"
            " add p99 ms | replicas |", "| --- " * 9 + "|"]  # fmt: skip
    for i, s in enumerate(steps):
        mark = " (saturated)" if sat and sat[0] == i else ""
        reps = ", ".join(f"{k} {v}" for k, v in sorted(s.replicas.items())) or "n/a"
        out.append(
            f"| {s.users}{mark} | {s.rps:.1f} | {s.p50_ms:.0f} | {s.p95_ms:.0f} | {s.p99_ms:.0f}"
            f" | {s.error_rate:.2%} | {s.add_rps:.1f} | {s.add_p99_ms:.0f} | {reps} |"
        )
    out += ["", "![throughput](throughput.png) ![latency](latency.png) ![errors](errors.png)"]
    out += ["", "## Settings used", ""]
    out.append(f"- shards: {used['shards']} on the ring + {used['dedicated_shards']} dedicated")
    out.append(f"- ingress: {used['ingress']}; load generator and stack share {used['cpus']} CPUs")
    for name, d in used["deployments"].items():
        out.append(
            f"- {name}: replicas {d['replicas']}, max_ongoing_requests"
            f" {d['max_ongoing_requests']}, max_queued_requests {d['max_queued_requests']}"
        )
    out += [
        "",
        "## How to read it",
        "",
        "Each step is a separate headless Locust run at a fixed user count; statistics are"
        " reset after the ramp. 409 (sold out, over the per-fan limit) counts as success, 429"
        " and 503 as errors. The capacity of this configuration is the last healthy step; to"
        " plan a surge, compare its requests/s with the surge's expected peak and scale the"
        " replicas (serve_config.yaml) or shards (MATCHDAY_SHARDS) that the replica column and"
        " the settings above show were the limit. Raw Locust CSVs per step are next to this"
        " file; `steps.json` holds the table.",
    ]
    return "\n".join(out) + "\n"


def save_steps(steps: list[StepResult], path: Path) -> None:
    path.write_text(json.dumps([asdict(s) for s in steps], indent=2))
