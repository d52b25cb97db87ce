"""CPU per process role while ``validate``'s Locust steps run, for the steps beside the
saturation (``matchday.capacity.beside``).

A thread samples ``matchday.ops.cpu_roles`` every ``EVERY_S`` (the stack's processes, and
this process's tree as the load generator: Locust runs under it). A step's window is the
``--step-s`` before its Locust statistics were last written (Locust writes them as it
exits), within a sample's spacing.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matchday.capacity import classes as k
from matchday.capacity.beside import StepCpu, net_by_component, table
from matchday.capacity.plan import make_plan, scaled
from matchday.capacity.plan_model import Plan
from matchday.capacity.profile import PlanInputError, Profile

EVERY_S = 2.0  # a sample walks every process of the stack: not too often on 2 cores


class StepSampler:
    """Samples CPU per role in a thread, with wall-clock times (to match Locust's files)."""

    def __init__(self, roots: Mapping[str, int | None], labels: Mapping[int, str]) -> None:
        self.roots = {**roots, k.LOAD_GENERATOR: os.getpid()}
        self.labels = dict(labels)
        self.samples: list[tuple[float, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="step-cpu", daemon=True)

    def _run(self) -> None:
        from matchday.ops.cpu_roles import cpu_sample

        while True:
            self.samples.append((time.time(), cpu_sample(self.roots, self.labels)))
            if self._stop.wait(EVERY_S):
                return

    def __enter__(self) -> StepSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def cores(self, start: float, end: float) -> dict[str, float] | None:
        """Cores per role between the first and last samples inside [start, end]."""
        from matchday.ops.cpu_roles import cores_used

        inside = [s for t, s in self.samples if start <= t <= end]
        return cores_used(inside[0], inside[-1]) if len(inside) >= 2 else None


def step_window(steps_dir: Path, index: int, users: int, step_s: float) -> tuple[float, float]:
    """(start, end) wall-clock of step ``index``'s measured part."""
    end = (steps_dir / f"step-{index + 1:02d}-{users}u_stats.csv").stat().st_mtime
    return end - step_s, end


def beside_saturation(
    sampler: StepSampler,
    steps: Sequence[Mapping[str, Any]],
    steps_dir: Path,
    step_s: float,
    plan: Plan,
    profile: Profile,
) -> list[str]:
    """validation.md's table for the last two steps (the run stops at the saturated one)."""
    rows = []
    for i in range(max(0, len(steps) - 2), len(steps)):
        users, rps = int(steps[i]["users"]), float(steps[i]["rps"])
        try:
            measured = sampler.cores(*step_window(steps_dir, i, users, step_s))
        except OSError:
            measured = None
        if measured is None or rps <= 0:
            continue
        at = make_plan(profile, scaled(plan.demand, rps / plan.requests_per_s), plan.options)
        rows.append(StepCpu(users, rps, net_by_component(measured, profile.idle), at.cores))
    return table(rows)


def sampled_steps(
    args: argparse.Namespace,
    run_steps: Callable[[], list[dict[str, Any]]],
    steps_dir: Path,
    plan: Plan,
    profile: Profile,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The stepped run, with CPU per role sampled beside it when the stack's processes are
    known (``args.target``): (the steps, validation.md's table beside the saturation)."""
    if args.target is None:
        return run_steps(), []
    with StepSampler(args.target.roots, args.target.labels) as sampler:
        steps = run_steps()
    return steps, beside_saturation(sampler, steps, steps_dir, args.step_s, plan, profile)


def stack_of(args: argparse.Namespace, settings: Any, resolve: Callable[..., Any]) -> Any:
    """The stack's processes (``resolve_target``), or None, said on stderr."""
    try:
        return resolve(args, settings)
    except (PlanInputError, SystemExit, OSError) as exc:
        print(f"no CPU per role beside the steps: {exc}", file=sys.stderr, flush=True)
        return None
