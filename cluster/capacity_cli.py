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
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from matchday.capacity import classes as k
from matchday.capacity.demand import IN_STOCK, SOLD_OUT, WORST, demand
from matchday.capacity.plan import at_saturation, make_plan
from matchday.capacity.plan_model import Node, Options, Plan, Stores
from matchday.capacity.profile import PlanInputError, Profile, parse_profile
from matchday.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BASE_CONFIG = ROOT / "cluster" / "serve_config.production.yaml"
RAYSERVICE = ROOT / "cluster" / "kuberay" / "rayservice.yaml"
DEFAULT_HOT_SKU = "JERSEY-FINAL-LTD-M"  # loadtests/config.py's MATCHDAY_LT_HOT_SKU default
# 16Gi, 16GiB, 16G and 16GB all mean GiB here: node sizes are quoted either way.
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([KMGT])(?:i|iB|B)?)?\s*$")
_GIB_PER = {"K": 1 / 2**20, "M": 1 / 2**10, "G": 1.0, "T": 2**10}


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_memory_gib(text: str) -> float:
    """ "16Gi", "16GiB", "16G" or "16" (GiB) -> GiB; "512Mi" -> 0.5."""
    m = _MEMORY.match(text)
    if not m:
        raise PlanInputError(f"node memory {text!r}: write it like 16Gi, 512Mi or 16")
    return float(m.group(1)) * _GIB_PER[m.group(2) or "G"]


def parse_extra(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, _, rate = item.partition("=")
        try:
            out[name] = float(rate)
        except ValueError:
            raise PlanInputError(f"--add {item!r}: write CLASS=REQUESTS_PER_S") from None
    return out


def read_profile(path: Path) -> Profile:
    try:
        text = path.read_text()
    except OSError as exc:
        raise PlanInputError(f"cannot read the profile {path}: {exc.strerror}") from None
    return parse_profile(text)


def latency_ms(profile: Profile) -> dict[str, float]:
    return {c: cost.latency.mean_ms for c, cost in profile.classes.items()}


def build_plan(
    args: argparse.Namespace, profile: Profile, client_us: float = 0.0,
    replica_caps: dict[str, int] | None = None, saturation: bool = False,
    mixed: bool | None = None,
) -> Plan:  # fmt: skip
    """Everything ``plan`` checks before it writes anything; with ``saturation``, the plan
    re-made where its first component saturates (what ``validate`` predicts); ``mixed``
    False: the classes' costs only, whatever ``--classes-only`` says."""
    from loadtests.mixes import load_mix

    mix = load_mix(args.scenario)
    d = demand(
        mix, args.peak_users, latency_ms(profile), think=args.think_scale, state=args.stock,
        extra_at_peak=parse_extra(args.add),
    )  # fmt: skip
    node = Node(args.node_cores, parse_memory_gib(args.node_memory))
    stores = Stores(args.pg_cores, args.pg_wal_mbs, colocated=args.colocate_datastores)
    opts = Options(
        node=node, utilisation=args.target_utilisation, stores=stores,
        hot_skus=tuple(args.hot_skus), fixed_nodes=args.nodes, client_us=client_us,
        replica_caps=replica_caps or {},
        mixed=not args.classes_only if mixed is None else mixed,
    )  # fmt: skip
    return at_saturation(profile, d, opts) if saturation else make_plan(profile, d, opts)


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


def add_plan_options(p: argparse.ArgumentParser, cluster: bool = True) -> None:
    """What shapes a plan; ``validate`` plans for this machine and sets the cluster itself."""
    p.add_argument(
        "--hot-skus",
        nargs="+",
        metavar="SKU",
        default=[os.environ.get("MATCHDAY_LT_HOT_SKU", DEFAULT_HOT_SKU)],
        help="the limited SKUs the drop traffic goes to, split evenly",
    )
    p.add_argument(
        "--think-scale",
        type=float,
        default=1.0,
        help="personas' think time multiplier, as MATCHDAY_LT_THINK_SCALE (1.0)",
    )
    p.add_argument(
        "--stock",
        choices=[WORST, IN_STOCK, SOLD_OUT],
        default=WORST,
        help="size for the drop in stock, sold out, or the worse per class",
    )
    p.add_argument("--classes-only", action="store_true",
                   help="sum the classes' costs even where the profile measured the"
                        " scenario's own mix (to compare)")  # fmt: skip
    p.add_argument("--base-config", type=Path, default=BASE_CONFIG, help=argparse.SUPPRESS)
    p.add_argument("--rayservice", type=Path, default=RAYSERVICE, help=argparse.SUPPRESS)
    if not cluster:
        return
    p.add_argument("--node-cores", type=float, default=8.0, help="cores per node (8)")
    p.add_argument("--node-memory", default="16Gi", help="memory per node (16Gi)")
    p.add_argument(
        "--target-utilisation",
        type=float,
        default=0.7,
        help="plan each component to this share of its capacity (0.7)",
    )
    p.add_argument("--pg-cores", type=float, default=16.0, help="the primary's cores (16)")
    p.add_argument(
        "--pg-wal-mbs",
        type=float,
        default=64.0,
        help="WAL MB/s the primary writes and ships, sustained (64)",
    )
    p.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="CLASS=RATE",
        help=f"extra requests/s at the peak, e.g. {k.POLL_VOTE}=300 (repeatable)",
    )
    p.add_argument("--nodes", type=int, help="a given cluster size: where does it saturate?")
    p.add_argument(
        "--colocate-datastores",
        action="store_true",
        help="PostgreSQL and Redis run on the nodes (one machine)",
    )


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
