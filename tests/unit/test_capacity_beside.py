"""validate's CPU per component beside the saturated step, from recorded samples, and its
report with the prediction from the classes alone: the logic only, no Ray, no servers."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from cluster.capacity_steps_cpu import StepSampler, beside_saturation, step_window
from matchday.capacity import classes as k
from matchday.capacity.beside import StepCpu, net_by_component, table
from matchday.capacity.plan import make_plan
from matchday.capacity.plan_model import Node, Options
from matchday.capacity.profile import Idle
from tests.unit.capacity_cases import mixed_profile
from tests.unit.test_capacity_model import hand_demand
from tests.unit.test_capacity_replay import recorded_run, replay

IDLE = Idle(seconds=10.0, cores={"haproxy": 0.05, "ray:gcs": 0.1}, pg_write_xacts_per_s=0,
            pg_wal_bytes_per_s=0, redis_cmds_per_s=0)  # fmt: skip


def test_cpu_beside_the_steps_is_net_of_idle_and_set_beside_the_model() -> None:
    measured = {"haproxy": 0.45, "ray:proxy": 0.1, "ray:gcs": 0.05, "replica:shop": 0.3,
                "load generator": 0.6, "foreign": 0.02, "machine": 1.9, "steal": 0.0}  # fmt: skip
    net = net_by_component(measured, IDLE)
    assert net == {k.INGRESS: pytest.approx(0.5), k.RAY: 0.0, "replica:shop": 0.3,
                   k.LOAD_GENERATOR: 0.6, "foreign": 0.02}  # fmt: skip
    lines = table([StepCpu(40, 120.0, net, {k.INGRESS: 0.4, k.LOAD_GENERATOR: 0.5})])
    assert lines[0] == "| component | 40 users (120 req/s): measured | model |"
    assert "| ingress | 0.50 | 0.40 |" in lines
    assert "| load generator (Locust) | 0.60 | 0.50 |" in lines
    assert "| foreign (other load) | 0.02 | - |" in lines


def test_the_steps_beside_the_saturation_are_read_from_the_samples_of_their_windows(
    tmp_path: Path,
) -> None:
    from matchday.ops.cpu_roles import CpuSample

    steps = [{"users": u, "rps": r} for u, r in ((5, 40.0), (10, 70.0), (20, 75.0))]
    now = time.time()
    for i, s in enumerate(steps):  # Locust's statistics, last written as each step ends
        f = tmp_path / f"step-{i + 1:02d}-{s['users']}u_stats.csv"
        f.write_text("")
        os.utime(f, (now - 20 * (2 - i), now - 20 * (2 - i)))
    assert step_window(tmp_path, 2, 20, 15.0) == pytest.approx((now - 15, now))
    sampler = StepSampler({}, {})
    # The ingress uses 0.5 core all along; a sample every 2 s over the last minute.
    sampler.samples = [(now - t, CpuSample(100 - t, {(1, 0.0): ("haproxy", 50 - t / 2)}))
                       for t in range(60, -1, -2)]  # fmt: skip
    prof = mixed_profile()
    plan = make_plan(prof, hand_demand(), Options(Node(4, 8), 0.5))
    lines = beside_saturation(sampler, steps, tmp_path, 15.0, plan, prof)
    assert lines[0].startswith("| component | 10 users (70 req/s): measured | model | 20 users")
    ingress = next(x for x in lines if x.startswith("| ingress |"))
    # Measured 0.5 core (idle 0 in this profile); the model at 70/s: 70 x 150 us.
    assert ingress.startswith(f"| ingress | 0.50 | {70 * 150e-6:.2f} | 0.50 |")


def test_a_replayed_run_with_a_mixed_profile_shows_both_predictions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prof = mixed_profile().model_dump(by_alias=True)
    prof["mixes"]["steady"] = prof["mixes"].pop("test")
    run = recorded_run(tmp_path / "run", json.dumps(prof))
    got = replay(run, tmp_path / "out", monkeypatch)
    assert got["mixed_phase"] and got["predicted_rps"] != got["predicted_rps_classes_only"]
    text = (tmp_path / "out" / "validation.md").read_text()
    assert "from the classes alone |" in text
    alone = got["predicted_rps_classes_only"]
    assert f"| {alone:,.0f} ({alone / 70 - 1:+.0%}) |" in text
    plan_md = (tmp_path / "out" / "steady" / "plan.md").read_text()
    assert "## Cost from the scenario's mix" in plan_md
