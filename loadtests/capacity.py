"""Capacity report: run a scenario at stepped user counts against the running stack.

    python -m loadtests.capacity                                   # steady mix, 5..40 users
    python -m loadtests.capacity --users 10 20 40 80 --step-s 60 --host http://127.0.0.1:8000
    python -m loadtests.capacity --scenario loadtests/flash_sale.py --p99-ms 500

Each step is its own headless Locust run (``MATCHDAY_LT_SHAPE=off``, so any scenario's stage
table is replaced by the step's fixed user count), ramped over ``--ramp-s`` and then measured
for ``--step-s`` with statistics reset after the ramp. Progress is printed every two seconds
from Locust's live CSV. Output in ``--out`` (default loadtests/out/capacity-<time>):
``report.md``, ``throughput.png``, ``latency.png``, ``errors.png``, ``steps.json`` and each
step's Locust CSVs and HTML. Saturation rules: see ``loadtests.capacity_report``.

Start the stack with MATCHDAY_RATE_LIMIT_PER_S=100000 MATCHDAY_RATE_LIMIT_BURST=100000 (the
load comes from one address). The load generator shares the machine with the stack unless
you run it elsewhere: the report says how many CPUs it saw. Acknowledgements go to
``<out>/acks``; audit afterwards with ``python -m loadtests.audit --acks <out>/acks``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from loadtests import capacity_report as report
from loadtests.config import LoadConfig, check_target

ROOT = Path(__file__).resolve().parent.parent
PROGRESS_EVERY_S = 2.0


def live_replicas(data_dir: Path) -> dict[str, int]:
    """Running replicas per deployment from the Ray dashboard, if the stack has one."""
    try:
        state = json.loads((data_dir / "stack.json").read_text())
        dashboard = state.get("dashboard_url")
        if not dashboard or not dashboard.startswith(("127.0.0.1", "localhost")):
            return {}
        url = f"http://{dashboard}/api/serve/applications/"
        with urllib.request.urlopen(url, timeout=3) as r:
            apps = json.load(r).get("applications", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {
        f"{app}/{name}": sum(1 for x in d.get("replicas", []) if x.get("state") == "RUNNING")
        for app, a in apps.items()
        for name, d in a.get("deployments", {}).items()
    }


def run_step(
    args: argparse.Namespace, users: int, index: int, total: int, out: Path
) -> report.StepResult:
    prefix = out / f"step-{index + 1:02d}-{users}u"
    env = {
        **os.environ,
        "MATCHDAY_LT_SHAPE": "off",
        "MATCHDAY_LT_THINK_SCALE": str(args.think_scale),
        "MATCHDAY_LT_ACK_DIR": str(out / "acks"),
    }
    cmd = [
        sys.executable, "-m", "locust", "-f", str(args.scenario), "--headless",
        "--host", args.host, "-u", str(users), "-r", f"{max(1.0, users / args.ramp_s):.2f}",
        "-t", f"{round(args.ramp_s + args.step_s)}s", "--reset-stats", "--only-summary",
        "--csv", str(prefix), "--html", f"{prefix}.html", "--loglevel", "WARNING",
    ]  # fmt: skip
    started = time.monotonic()
    limit = args.ramp_s + args.step_s
    with open(f"{prefix}.log", "w") as log:
        # The command is built here from our own arguments, never from a shell string.
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        while proc.poll() is None:
            time.sleep(PROGRESS_EVERY_S)
            now = report.step_result(users, Path(f"{prefix}_stats.csv"))
            elapsed = time.monotonic() - started
            phase = "ramp" if elapsed < args.ramp_s else "measure"
            print(
                f"\r[step {index + 1}/{total}] {users:>4} users  {phase:<7}"
                f" {min(elapsed, limit):5.0f}/{limit:.0f} s  {now.rps:7.1f} req/s"
                f"  p95 {now.p95_ms:5.0f} ms  p99 {now.p99_ms:5.0f} ms"
                f"  errors {now.error_rate:6.2%}",
                end="",
                flush=True,
            )
            if elapsed > limit + 60:  # a wedged Locust must not hang the report
                proc.kill()
    result = report.step_result(users, Path(f"{prefix}_stats.csv"))
    if proc.returncode not in (0, 1) or not result.requests:  # 1: some requests failed
        tail = Path(f"{prefix}.log").read_text()[-2000:]
        raise SystemExit(f"\nstep {index + 1} did not run (exit {proc.returncode}):\n{tail}")
    result.replicas = live_replicas(args.data_dir)
    print(f"\r[step {index + 1}/{total}] {users:>4} users  done  {result.rps:7.1f} req/s"
          f"  p50 {result.p50_ms:.0f}  p95 {result.p95_ms:.0f}  p99 {result.p99_ms:.0f} ms"
          f"  errors {result.error_rate:.2%}" + " " * 20)  # fmt: skip
    return result


def main(argv: Sequence[str] | None = None) -> int:
    doc = (__doc__ or "").split("\n")[0]
    p = argparse.ArgumentParser(prog="python -m loadtests.capacity", description=doc)
    p.add_argument("--scenario", type=Path, default=ROOT / "loadtests" / "steady.py")
    p.add_argument("--host", default=LoadConfig.from_env().host)
    p.add_argument("--users", type=int, nargs="+", default=[5, 10, 20, 40])
    p.add_argument("--step-s", type=float, default=30.0, help="measured seconds per step")
    p.add_argument("--ramp-s", type=float, default=5.0, help="unmeasured ramp per step")
    p.add_argument("--think-scale", type=float, default=0.1,
                   help="think time multiplier; small values push the system")  # fmt: skip
    p.add_argument("--p99-ms", type=float, default=1000.0, help="saturation: p99 above this")
    p.add_argument("--max-error", type=float, default=0.01, help="saturation: errors above")
    p.add_argument("--data-dir", type=Path,
                   default=Path(os.environ.get("MATCHDAY_DATA_DIR", ".data")))  # fmt: skip
    p.add_argument("--out", type=Path)
    p.add_argument("--stop-at-saturation", action="store_true",
                   help="skip the steps after the first saturated one")  # fmt: skip
    args = p.parse_args(argv)
    why = check_target(args.host, LoadConfig.from_env())
    if why:
        print(why, file=sys.stderr)
        return 2
    out = args.out or ROOT / "loadtests" / "out" / time.strftime("capacity-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    steps = sorted(set(args.users))
    print(f"capacity: {args.scenario.name} against {args.host}, steps {steps},"
          f" {args.ramp_s:.0f}+{args.step_s:.0f} s each -> {out}")  # fmt: skip
    results: list[report.StepResult] = []
    for i, users in enumerate(steps):
        results.append(run_step(args, users, i, len(steps), out))
        sat = report.saturation(results, args.p99_ms, args.max_error)
        if sat and args.stop_at_saturation:
            print(f"saturated at {results[sat[0]].users} users: {sat[1]}; stopping")
            break
    sat = report.saturation(results, args.p99_ms, args.max_error)
    report.charts(results, out, sat[0] if sat else None)
    report.save_steps(results, out / "steps.json")
    meta = {
        "scenario": args.scenario.name,
        "host": args.host,
        "step_s": args.step_s,
        "ramp_s": args.ramp_s,
        "think_scale": args.think_scale,
        "started": time.strftime("%Y-%m-%d %H:%M"),
    }
    used = report.settings_used(ROOT / "serve_config.yaml", args.data_dir)
    (out / "report.md").write_text(
        report.markdown(results, meta, used, args.p99_ms, args.max_error)
    )
    print(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
