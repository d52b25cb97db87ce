"""``matchday capacity``: measure what requests cost, plan a match day, validate the plan.

    matchday capacity measure [--host URL] [--phase-s S] [--rate R] [--out FILE]
    matchday capacity plan --profile FILE --scenario NAME --peak-users N [--hot-skus SKU ...]
        [--drop-units Q] [--node-cores C] [--node-memory M] [--target-utilisation U] [--out DIR]
    matchday capacity validate [--host URL] [--scenarios steady flash_sale] [--users N ...]

``measure`` drives each request class at a fixed rate against the running stack and writes
a cost profile (JSON) to stdout; ``plan`` turns a profile, a Locust scenario and a peak into
report.md, demand.png, load.png, serve_config.yaml, rayservice-patch.yaml and plan.json;
``validate`` checks a plan for this machine against the stepped Locust measurement. Progress
goes to stderr, results to stdout. Bad input exits 2 and writes nothing. ADR 0023.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from cluster.capacity_common import add_plan_options, build_plan, read_profile, say
from matchday.capacity.plan_model import Plan
from matchday.capacity.profile import PlanInputError, Profile
from matchday.settings import Settings


class _BlockDumper:
    """PyYAML with multi-line strings as ``|`` blocks (the embedded serveConfigV2)."""

    @staticmethod
    def dump(data: Any) -> str:
        import yaml

        class Dumper(yaml.SafeDumper):
            pass

        def text(dumper: yaml.SafeDumper, value: str) -> Any:
            style = "|" if "\n" in value else None
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

        Dumper.add_representer(str, text)
        return str(yaml.dump(data, Dumper=Dumper, sort_keys=False, width=100))


def outputs(args: argparse.Namespace, p: Plan, profile: Profile) -> dict[str, str]:
    """Every text file of the plan, by name (charts are drawn separately)."""
    import yaml

    from matchday.capacity.deploy import rayservice_patch, serve_config
    from matchday.capacity.report import as_dict, markdown

    try:
        base = yaml.safe_load(args.base_config.read_text())
        docs = list(yaml.safe_load_all(args.rayservice.read_text()))
    except OSError as exc:
        raise PlanInputError(f"cannot read {exc.filename}: {exc.strerror}") from None
    (service,) = [d for d in docs if d and d.get("kind") == "RayService"]
    config_text = _BlockDumper.dump(serve_config(base, p))
    head = (
        f"# matchday capacity plan: {args.scenario}, {args.peak_users} users at the peak, nodes"
        f" of {p.options.node.cores:g} cores / {p.options.node.memory_gib:g} GiB at"
        f" {p.options.utilisation:.0%}.\n# From {args.base_config.name}; see report.md.\n"
    )
    patch = rayservice_patch(service, config_text, p)
    return {
        "report.md": markdown(p, profile, args.scenario, args.drop_units),
        "serve_config.yaml": head + config_text,
        "rayservice-patch.yaml": head + _BlockDumper.dump(patch),
        "plan.json": json.dumps(as_dict(p, args.scenario), indent=2, default=str) + "\n",
    }


def write_plan(out: Path, files: dict[str, str], p: Plan) -> None:
    """Everything into a scratch directory first, then moved into ``out``."""
    from cluster.capacity_charts import demand_chart, load_chart

    scratch = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        for name, text in files.items():
            (scratch / name).write_text(text)
        demand_chart(p, scratch / "demand.png")
        load_chart(p, scratch / "load.png")
        out.mkdir(parents=True, exist_ok=True)
        for f in scratch.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    from cluster import capacity_args

    try:
        capacity_args.plan(args)
        profile = read_profile(args.profile)
        p = build_plan(args, profile)
        files = outputs(args, p, profile)
    except PlanInputError as exc:
        say(f"matchday capacity plan: {exc}")
        return 2
    out = args.out or settings.data_dir / "capacity" / time.strftime(
        f"plan-{args.scenario}-{args.peak_users}u-%Y%m%d-%H%M%S"
    )
    try:
        write_plan(out, files, p)
    except OSError as exc:
        say(f"matchday capacity plan: cannot write {out}: {exc.strerror}")
        return 2
    say(f"wrote {', '.join(sorted([*files, 'demand.png', 'load.png']))} to {out}")
    first = p.first
    print(
        f"{args.scenario} at {args.peak_users:,} users: {p.requests_per_s:,.0f} requests/s;"
        f" {p.nodes.at_peak} node(s) (up to {p.nodes.max}); shards {p.shards.ring}+"
        f"{p.shards.dedicated}; PostgreSQL {p.stores.pg_write_xacts_per_s:,.0f} commits/s"
        f" ({p.stores.primaries_needed} primary); first to saturate: {first.name} at"
        f" {first.headroom:.2f}x the peak{' (at least)' if first.lower_bound else ''}."
        f"\nreport: {out / 'report.md'}"
    )
    return 0


def register(sub: Any) -> None:
    """Add ``capacity`` to ``matchday``'s parser."""
    cap = sub.add_parser("capacity", help="measure costs, plan a match day, validate a plan")
    action = cap.add_subparsers(dest="action", required=True)
    plan = action.add_parser("plan", help="a stage table and a profile -> the cluster it needs")
    plan.add_argument("--profile", type=Path, required=True, help="from `capacity measure`")
    plan.add_argument("--scenario", required=True,
                      help="kickoff, goal, flash_sale, matchday, prematch or steady")  # fmt: skip
    plan.add_argument("--peak-users", type=int, required=True, help="users at the table's peak")
    plan.add_argument("--drop-units", type=int, help="units in the drop: when it sells out")
    plan.add_argument("--out", type=Path, help="directory (default .data/capacity/plan-...)")
    add_plan_options(plan)
    plan.set_defaults(fn=cmd_plan)
    from cluster.capacity_measure import register as register_measure

    register_measure(action)
    from cluster.capacity_validate import register as register_validate

    register_validate(action)
