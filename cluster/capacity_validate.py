"""``matchday capacity validate``: does a plan for this machine predict where it saturates?

    matchday capacity validate                                  # steady and flash_sale
    matchday capacity validate --profile profile.json --users 5 10 20 40 80 --step-s 20
    matchday capacity validate --replay .data/capacity/validate-1   # the model, no load

For each scenario: plan for one node of this machine (its cores and memory, PostgreSQL and
Redis on it, utilisation 100%, Locust beside the stack), which predicts the requests/s at
which the first component saturates; then the stepped Locust measurement of
``loadtests/capacity.py`` runs on the same stack, and its highest throughput up to the
first saturated step is compared with the prediction. Locust shares the machine, so its CPU
per request is measured first in a short calibration run and planned as one more component.
Target: within +-25%. Results in ``--out`` (validation.md, validation.json, each scenario's
capacity report); the verdict on stdout. Run it on a quiet machine: throughput measured
beside other work is noise.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cluster.capacity_common import add_plan_options, build_plan, read_profile, say
from matchday.capacity.demand import SOLD_OUT, WORST
from matchday.capacity.profile import PlanInputError, Profile
from matchday.capacity.scaling import rate_factors, two_rate_classes
from matchday.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TARGET_ERROR = 0.25
CALIBRATION_USERS = 5


def _locust_env(think: float, acks: Path) -> dict[str, str]:
    return {**os.environ, "MATCHDAY_LT_SHAPE": "off", "MATCHDAY_LT_THINK_SCALE": f"{think:g}",
            "MATCHDAY_LT_ACK_DIR": str(acks)}  # fmt: skip


def locust_run(
    scenario: str, host: str, think: float, seconds: float, prefix: Path
) -> tuple[float, int]:
    """(CPU seconds, requests) of one headless Locust run of ``scenario``, to its exit."""
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / f"{scenario}.py"),
           "--headless", "--host", host, "-u", str(CALIBRATION_USERS),
           "-r", str(CALIBRATION_USERS), "-t", f"{round(seconds)}s", "--only-summary",
           "--csv", str(prefix), "--loglevel", "WARNING"]  # fmt: skip
    with open(f"{prefix}.log", "w") as log:
        # Our own arguments, never a shell string.
        proc = subprocess.Popen(cmd, env=_locust_env(think, prefix.parent / "acks"), cwd=ROOT,  # noqa: S603
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        # The kernel's account of every CPU second Locust used, to its exit.
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
    with open(f"{prefix}_stats.csv", newline="") as f:
        total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return usage.ru_utime + usage.ru_stime, int(total["Request Count"])


def calibrate_client(scenario: str, host: str, think: float, seconds: float, out: Path) -> float:
    """Locust's own CPU microseconds per request for ``scenario`` at a light load: the
    difference between a run of ``seconds`` and one of twice that, so the CPU Locust spends
    starting and stopping cancels out."""
    say(f"[{scenario}] calibrating Locust's CPU per request: {CALIBRATION_USERS} users,"
        f" {seconds:g} s and {2 * seconds:g} s ...")  # fmt: skip
    cpu1, n1 = locust_run(scenario, host, think, seconds, out / f"calibrate-{scenario}-1")
    cpu2, n2 = locust_run(scenario, host, think, 2 * seconds, out / f"calibrate-{scenario}-2")
    if n2 <= n1 or cpu2 <= cpu1:
        raise PlanInputError(
            f"calibrating {scenario}: Locust's runs of {seconds:g} and"
            f" {2 * seconds:g} s did not differ ({n1}, {n2} requests)"
        )
    return (cpu2 - cpu1) * 1e6 / (n2 - n1)


def run_steps(args: argparse.Namespace, scenario: str, out: Path) -> list[dict[str, Any]]:
    cmd = [sys.executable, "-m", "loadtests.capacity",
           "--scenario", str(ROOT / "loadtests" / f"{scenario}.py"), "--host", args.host,
           "--users", *map(str, args.users), "--step-s", f"{args.step_s:g}",
           "--ramp-s", f"{args.ramp_s:g}", "--think-scale", f"{args.think_scale:g}",
           "--data-dir", str(args.data_dir), "--out", str(out), "--stop-at-saturation"]  # fmt: skip
    say(f"[{scenario}] stepped Locust measurement: users {args.users} ...")
    # Progress of each step goes straight to our stderr.
    done = subprocess.run(cmd, cwd=ROOT, stdout=sys.stderr, check=False)  # noqa: S603
    if done.returncode != 0:
        raise PlanInputError(f"the stepped measurement of {scenario} failed (exit"
                             f" {done.returncode}); its output is above")  # fmt: skip
    steps: list[dict[str, Any]] = json.loads((out / "steps.json").read_text())
    return steps


def measured_saturation(steps: list[dict[str, Any]], out: Path) -> tuple[float, bool]:
    """(the highest requests/s up to the first saturated step, whether one saturated)."""
    report = (out / "report.md").read_text()
    saturated = "**Saturated at" in report
    return max(float(s["rps"]) for s in steps), saturated


def replica_caps(config: Path) -> dict[str, int]:
    """Replica maxima per role of the Serve config the local stack deploys."""
    import yaml

    from matchday.capacity.classes import replica_role

    caps = {}
    for app in yaml.safe_load(config.read_text()).get("applications", []):
        for d in app.get("deployments", []):
            auto = d.get("autoscaling_config") or {}
            caps[replica_role(app["name"], d["name"])] = int(
                auto.get("max_replicas", d.get("num_replicas", 1))
            )
    return caps


def predict(
    args: argparse.Namespace, profile: Profile, scenario: str, client_us: float,
    mixed: bool | None = None,
) -> Any:  # fmt: skip
    plan_args = argparse.Namespace(**{
        **vars(args), "scenario": scenario, "peak_users": max(args.users), "nodes": 1,
        "node_cores": float(os.cpu_count() or 1), "colocate_datastores": True,
        "target_utilisation": 1.0,
    })  # fmt: skip
    if args.node_memory is None:
        import psutil

        plan_args.node_memory = f"{psutil.virtual_memory().total / 2**30:.1f}Gi"
    caps = replica_caps(ROOT / "serve_config.yaml")  # what `matchday run` deploys
    return build_plan(plan_args, profile, client_us=client_us, replica_caps=caps, saturation=True,
                      mixed=mixed)  # fmt: skip


def replayed(args: argparse.Namespace, scenario: str) -> tuple[float, list[dict[str, Any]], Path]:
    """(Locust's us a request, the steps, their directory) of an earlier run's scenario."""
    try:
        earlier = json.loads((args.replay / "validation.json").read_text())
        client_us = next(float(r["locust_us_per_request"]) for r in earlier
                         if r["scenario"] == scenario)  # fmt: skip
        steps_dir = args.replay / scenario / "steps"
        steps: list[dict[str, Any]] = json.loads((steps_dir / "steps.json").read_text())
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        msg = f"--replay {args.replay}: no measured {scenario} run ({exc})"
        raise PlanInputError(msg) from None
    return client_us, steps, steps_dir


def validate_one(args: argparse.Namespace, profile: Profile, scenario: str) -> dict[str, Any]:
    out = args.out / scenario
    out.mkdir(parents=True, exist_ok=True)
    if args.replay:
        client_us, steps, steps_dir = replayed(args, scenario)
    else:
        client_us = calibrate_client(scenario, args.host, args.think_scale, args.calibrate_s, out)
    plan = predict(args, profile, scenario, client_us)
    alone = predict(args, profile, scenario, 0.0)
    classes = predict(args, profile, scenario, client_us, mixed=False)
    say(f"[{scenario}] predicted: {plan.saturation_requests_per_s:,.0f} requests/s, first"
        f" {plan.first.name} (Locust {client_us:,.0f} us a request)")  # fmt: skip
    from cluster.capacity_steps_cpu import sampled_steps

    beside: list[str] = []
    if not args.replay:
        steps_dir = out / "steps"
        steps, beside = sampled_steps(args, lambda: run_steps(args, scenario, steps_dir),
                                      steps_dir, plan, profile)  # fmt: skip
    from matchday.capacity.report import markdown as plan_markdown

    (out / "plan.md").write_text(plan_markdown(plan, profile, scenario))  # with the factors
    measured, saturated = measured_saturation(steps, steps_dir)
    error = plan.saturation_requests_per_s / measured - 1 if measured > 0 else float("inf")
    return {
        "scenario": scenario, "predicted_rps": plan.saturation_requests_per_s,
        "predicted_rps_without_locust": alone.saturation_requests_per_s,
        "predicted_rps_classes_only": classes.saturation_requests_per_s,
        "mixed_phase": plan.mixed is not None, "cpu_beside_saturation": beside,
        "first": plan.first.name, "locust_us_per_request": client_us,
        "measured_rps": measured, "saturated": saturated, "error": error,
        "within_target": saturated and abs(error) <= TARGET_ERROR,
        "rate_factors": rate_factors(profile, plan.rates_at_peak),
        "steps": [{"users": s["users"], "rps": s["rps"], "p99_ms": s["p99_ms"],
                   "errors": s["failures"] / max(1, s["requests"])} for s in steps],
    }  # fmt: skip


def markdown(results: list[dict[str, Any]], profile: Profile, args: argparse.Namespace) -> str:
    out = ["# Capacity validation", "",
           f"{time.strftime('%Y-%m-%d %H:%M')} on {profile.machine.cores} cores"
           f" ({profile.machine.cpu_model}); profile measured {profile.measured_at} with"
           f" {profile.contention.foreign_cores:.2f} cores of other load. Steps of"
           f" {args.step_s:g} s (+{args.ramp_s:g} s ramp), think x{args.think_scale:g}, stock"
           f" state `{args.stock}`. Target: within +-{TARGET_ERROR:.0%}."
           + (f" Replayed: the profile and steps measured in {args.replay}, the model of"
              f" this matchday." if args.replay else ""), "",
           "| scenario | predicted req/s | measured req/s | error | first to saturate |"
           " Locust us/request | saturated in the run | from the classes alone |",
           "| --- " * 8 + "|"]  # fmt: skip
    for r in results:
        alone = r["predicted_rps_classes_only"]
        out.append(
            f"| {r['scenario']} | {r['predicted_rps']:,.0f} | {r['measured_rps']:,.0f} |"
            f" {r['error']:+.0%} | {r['first']} | {r['locust_us_per_request']:,.0f} |"
            f" {'yes' if r['saturated'] else 'no: add a bigger step'} |"
            + (f" {alone:,.0f} ({alone / r['measured_rps'] - 1:+.0%}) |" if r["mixed_phase"]
               else " (no mixed phase: the same) |")
        )  # fmt: skip
    out += rate_lines(results, profile)
    for r in results:
        if r["cpu_beside_saturation"]:
            out += ["", f"## {r['scenario']}: CPU beside the saturation", "",
                    "Cores per component during the last two steps (measured, net of the"
                    " stack's idle burn) and what the prediction's model gives at each step's"
                    " requests/s:", "", *r["cpu_beside_saturation"]]  # fmt: skip
    return "\n".join(out) + "\n"


def rate_lines(results: list[dict[str, Any]], profile: Profile) -> list[str]:
    """Which roles the prediction planned at a cost other than the light phase's."""
    two = two_rate_classes(profile)
    out = ["", "## Costs with the rate", ""]
    if not two:
        return [*out, "The profile has one rate per class (schema version 1, or no class took a"
                " second rate): every role but the shards and the publisher is planned at its"
                " light-load cost."]  # fmt: skip
    out.append(f"{len(two)} of {len(profile.classes)} classes measured at two rates. The roles"
               " whose cost per request the prediction scaled (each scenario's plan.md has"
               " the factor per class):")  # fmt: skip
    for r in results:
        roles = [f"{role} (x{min(f.values()):.2f}-{max(f.values()):.2f} over {len(f)} classes)"
                 for role, f in sorted(r["rate_factors"].items())]  # fmt: skip
        out.append(f"- {r['scenario']}: {', '.join(roles) or 'none'}")
    return out


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from cluster import capacity_args
    from cluster.capacity_high import second_rate
    from cluster.capacity_measure import measure, resolve_target
    from cluster.capacity_run import MeasureError, Mixes
    from cluster.capacity_steps_cpu import stack_of

    args.out = args.out or settings.data_dir / "capacity" / time.strftime("validate-%Y%m%d-%H%M%S")
    args.data_dir = settings.data_dir
    try:
        capacity_args.validate(args)
        if args.replay and not args.profile:
            args.profile = args.replay / "profile.json"
        if args.profile:
            profile = read_profile(args.profile)
            args.target = None if args.replay else stack_of(args, settings, resolve_target)
        else:
            rate_high = second_rate(args)
            target = args.target = resolve_target(args, settings)
            args.host = target.host
            stock = SOLD_OUT if args.stock == WORST else args.stock
            mixes = Mixes(() if args.no_mixes else tuple(args.scenarios), args.think_scale, stock)
            profile = measure(target, args.phase_s, args.rate, args.callers, rate_high=rate_high,
                              mixes=mixes)  # fmt: skip
        args.host = args.host or f"http://{settings.http_host}:{settings.http_port}"
        for scenario in args.scenarios:
            predict(args, profile, scenario, 0.0)  # refuse bad input before any load
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "profile.json").write_text(profile.to_json())
        results = [validate_one(args, profile, s) for s in args.scenarios]
    except (PlanInputError, SystemExit) as exc:
        say(f"matchday capacity validate: {exc}")
        return 2
    except MeasureError as exc:
        say(f"matchday capacity validate: {exc}")
        return 1
    (args.out / "validation.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "validation.md").write_text(markdown(results, profile, args))
    for r in results:
        verdict = "within target" if r["within_target"] else "OUTSIDE target"
        print(f"{r['scenario']}: predicted {r['predicted_rps']:,.0f} requests/s, measured"
              f" {r['measured_rps']:,.0f} ({r['error']:+.0%}, {verdict})")  # fmt: skip
    print(f"report: {args.out / 'validation.md'}")
    return 1 if args.strict and not all(r["within_target"] for r in results) else 0


def register(action: Any) -> None:
    v = action.add_parser("validate", help="a plan for this machine vs its measured saturation")
    v.add_argument("--host", help="the shop's base URL (default: this stack's HTTP address)")
    v.add_argument("--scenarios", nargs="+", default=["steady", "flash_sale"])
    v.add_argument("--profile", type=Path, help="use this profile instead of measuring first")
    v.add_argument("--users", type=int, nargs="+", default=[5, 10, 20, 40, 80])
    v.add_argument("--step-s", type=float, default=20.0, help="measured seconds per step (20)")
    v.add_argument("--ramp-s", type=float, default=5.0, help="unmeasured ramp per step (5)")
    v.add_argument("--calibrate-s", type=float, default=10.0, help="Locust calibration (10)")
    v.add_argument("--phase-s", type=float, default=8.0, help="measure: seconds per class")
    v.add_argument("--rate", type=float, default=40.0, help="measure: requests/s per class")
    v.add_argument("--rate-high", type=float, default=None,
                   help="measure: each class's second rate (2.5 x --rate; 0: none)")  # fmt: skip
    v.add_argument("--callers", type=int, default=256, help="measure: hot-shard callers")
    v.add_argument("--stack-pid", type=int, help="measure: the stack's root process")
    v.add_argument("--no-mixes", action="store_true",
                   help="measure: no mixed phase (the plan then sums the classes)")  # fmt: skip
    v.add_argument("--replay", type=Path,
                   help="an earlier run's --out: its profile and measured steps, no load sent"
                        " (checks a model change against recorded runs)")  # fmt: skip
    v.add_argument("--strict", action="store_true", help="exit 1 when outside +-25%%")
    v.add_argument("--out", type=Path, help="directory (default .data/capacity/validate-...)")
    add_plan_options(v, cluster=False)
    # Like loadtests.capacity: think x0.1, and the demo's drop sells out in the first seconds.
    v.set_defaults(
        think_scale=0.1,
        stock=SOLD_OUT,
        node_memory=None,
        peak_users=None,
        drop_units=None,
        pg_cores=1.0,
        pg_wal_mbs=1.0,
        add=[],
        fn=cmd_validate,
    )
