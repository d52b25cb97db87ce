"""The numbers and paths ``matchday capacity`` is given, checked before anything runs.

argparse's ``type=float`` takes ``nan``, ``inf`` and ``-4``; the model then divides by them,
converts them to ints or reports negative headroom. Every command refuses them here with
one line naming the flag (``PlanInputError``, exit 2), before it measures or writes.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from pathlib import Path

from matchday.capacity.profile import PlanInputError

# More users than this at one match's peak is a typo, and past it the plan's integer
# counts (nodes, shards) stop meaning anything.
MAX_PEAK_USERS = 1_000_000_000


def number(flag: str, value: float | None, *, above: float | None = None,
           at_least: float | None = None) -> None:  # fmt: skip
    """A finite ``value`` above ``above`` (or at least ``at_least``); None is "not given"."""
    if value is None:
        return
    if not math.isfinite(value):
        raise PlanInputError(f"{flag} must be a finite number, not {value}")
    if above is not None and not value > above:
        raise PlanInputError(f"{flag} must be above {above:g}, not {value:g}")
    if at_least is not None and not value >= at_least:
        raise PlanInputError(f"{flag} must be at least {at_least:g}, not {value:g}")


def skus(flag: str, names: Iterable[str]) -> None:
    """SKUs as the engine accepts them (``SKU_RE``), each named once."""
    from matchday.inventory.commands import SKU_RE

    seen: set[str] = set()
    for name in names:
        if not SKU_RE.fullmatch(name):
            raise PlanInputError(
                f"{flag} {name!r} is not a SKU: 1-64 letters, digits, '.', '_' or '-',"
                " starting with a letter or digit"
            )
        if name in seen:
            raise PlanInputError(f"{flag} names {name!r} twice")
        seen.add(name)


def out_dir(flag: str, path: Path | None) -> None:
    """A directory to write into: absent, or a directory, under a directory."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise PlanInputError(f"{flag} {path} exists and is not a directory")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise PlanInputError(f"{flag} {path}: {parent} is not a directory")


def out_file(flag: str, path: Path | None) -> None:
    """A file to write: not a directory, in a directory that exists."""
    if path is None:
        return
    if path.is_dir():
        raise PlanInputError(f"{flag} {path} is a directory")
    if not path.parent.is_dir():
        raise PlanInputError(f"{flag} {path}: no directory {path.parent}")


def shape(args: argparse.Namespace) -> None:
    """What ``plan`` and ``validate`` share (``add_plan_options``)."""
    skus("--hot-skus", args.hot_skus)
    number("--think-scale", args.think_scale, at_least=0)


def plan(args: argparse.Namespace) -> None:
    """``capacity plan``'s flags (the model checks what it derives from them once more)."""
    if not 0 < args.peak_users <= MAX_PEAK_USERS:
        raise PlanInputError(
            f"--peak-users must be a positive number up to {MAX_PEAK_USERS:,}, not"
            f" {args.peak_users}"
        )
    number("--drop-units", args.drop_units, at_least=1)
    shape(args)
    u = args.target_utilisation
    if not (math.isfinite(u) and 0 < u <= 1):
        raise PlanInputError(f"--target-utilisation must be above 0 and at most 1, not {u}")
    number("--node-cores", args.node_cores, above=0)
    number("--pg-cores", args.pg_cores, above=0)
    number("--pg-wal-mbs", args.pg_wal_mbs, above=0)
    number("--nodes", args.nodes, at_least=1)
    out_dir("--out", args.out)


def measuring(args: argparse.Namespace) -> None:
    """The measurement's flags, shared by ``measure`` and ``validate``."""
    number("--phase-s", args.phase_s, above=0)
    number("--rate", args.rate, above=0)
    number("--rate-high", args.rate_high, at_least=0)
    number("--callers", args.callers, at_least=1)
    number("--stack-pid", args.stack_pid, at_least=1)


def measure(args: argparse.Namespace) -> None:
    measuring(args)
    number("--tail-s", args.tail_s, at_least=0)
    number("--mix-think", args.mix_think, at_least=0)
    number("--redis-s", args.redis_s, above=0)
    out_file("--out", args.out)


def validate(args: argparse.Namespace) -> None:
    measuring(args)
    shape(args)
    for users in args.users:
        number("--users", users, at_least=1)
    number("--step-s", args.step_s, above=0)
    number("--ramp-s", args.ramp_s, at_least=0)
    number("--calibrate-s", args.calibrate_s, above=0)
    out_dir("--out", args.out)
