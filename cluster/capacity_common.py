"""What ``matchday capacity plan`` and ``matchday capacity validate`` share: the options that
shape a plan, reading a profile, building the plan, progress on stderr.

Its own module so that capacity_cli (which registers ``validate``) and capacity_validate
both import it, not each other (issue 14: they formed an import cycle).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from matchday.capacity import classes as k
from matchday.capacity.demand import IN_STOCK, SOLD_OUT, WORST, demand
from matchday.capacity.plan import at_saturation, make_plan
from matchday.capacity.plan_model import Node, Options, Plan, Stores
from matchday.capacity.profile import PlanInputError, Profile, parse_profile

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
