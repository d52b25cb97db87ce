"""CPU per component measured during validate's Locust steps, beside the model's.

``validate`` samples CPU per process role while the stepped Locust measurement runs and
takes each step's measured window. For the steps beside the saturation (the saturated step
and the one before it), each component's cores net of the stack's idle burn are set beside
what the prediction's model gives at that step's requests/s: where the two part, the profile
under-counts (or over-counts) that component. ``validate``'s own process tree (Locust and
the sampling) is the load generator, beside the model's; ``foreign`` is any other busy CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matchday.capacity import classes as k
from matchday.capacity.profile import Idle

FOREIGN = "foreign"  # matchday.ops.cpu_roles' busy CPU not ours: Locust, and anything else


@dataclass(frozen=True)
class StepCpu:
    users: int
    rps: float
    measured: Mapping[str, float]  # component -> cores, net of idle (``net_by_component``)
    model: Mapping[str, float]  # component -> cores the model gives at ``rps``


def net_by_component(cores_by_role: Mapping[str, float], idle: Idle) -> dict[str, float]:
    """Cores per component beyond each role's idle burn (never below 0); the load generator
    and ``foreign`` as they are (the stack's idle says nothing of them)."""
    out: dict[str, float] = {}
    for role, cores in cores_by_role.items():
        if role in (FOREIGN, k.LOAD_GENERATOR):
            out[role] = out.get(role, 0.0) + cores
            continue
        comp = k.component(role)
        if comp is not None:
            out[comp] = out.get(comp, 0.0) + max(0.0, cores - idle.cores.get(role, 0.0))
    return out


def table(rows: Sequence[StepCpu]) -> list[str]:
    """Markdown: one column pair per step (measured, model), one row per component."""
    if not rows:
        return []
    head = " | ".join(f"{r.users} users ({r.rps:,.0f} req/s): measured | model" for r in rows)
    out = [f"| component | {head} |", "| --- " * (1 + 2 * len(rows)) + "|"]
    comps = sorted({c for r in rows for c in (*r.measured, *r.model)})
    labels = {FOREIGN: "foreign (other load)", k.LOAD_GENERATOR: "load generator (Locust)"}
    for comp in comps:
        label = labels.get(comp, comp)
        cells = " | ".join(f"{_cores(r.measured, comp)} | {_cores(r.model, comp)}" for r in rows)
        out.append(f"| {label} | {cells} |")
    return out


def _cores(by: Mapping[str, float], comp: str) -> str:
    return f"{by[comp]:.2f}" if comp in by else "-"
