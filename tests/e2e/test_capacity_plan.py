"""``matchday capacity measure`` against the served stack, then ``plan`` from what it found.

Short phases (2 s a class at 20/s, then 2 s more at 40/s), so only structure and
invariants are asserted, never timings: every class measured, each one costing CPU in its own
app's replicas, a second rate for each class or the reason it has none, each default scenario's
mix measured together or the reason it was not kept, the hot shard's ceiling found, and a plan
for twice the users asking at least as much of everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cluster.cli import main
from matchday.capacity import classes as k
from matchday.capacity.profile import VERSION, Profile, parse_profile
from tests.e2e.conftest import Served

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def stack_env(served: Served, ray: Any, data_dir: Path) -> dict[str, str]:
    """The served stack's whereabouts, as a second process on the machine finds them."""
    s = served.settings
    return {
        **os.environ,
        "MATCHDAY_DATABASE_URL": s.database_url, "MATCHDAY_REDIS_URL": s.redis_url,
        "MATCHDAY_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "MATCHDAY_NAMESPACE": s.namespace, "MATCHDAY_STREAM_NAME": s.stream_name,
        "MATCHDAY_AVAILABILITY_KEY": s.availability_key, "MATCHDAY_SHARDS": str(s.shards),
        "MATCHDAY_DEDICATED_SHARDS": str(s.dedicated_shards), "MATCHDAY_DATA_DIR": str(data_dir),
    }  # fmt: skip


@pytest.fixture(scope="module")
def measured(served: Served, ray_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("capacity")
    profile = out / "profile.json"
    done = subprocess.run(
        [sys.executable, "-m", "cluster.cli", "capacity", "measure", "--host", served.base,
         "--stack-pid", str(os.getpid()), "--phase-s", "2", "--rate", "20", "--rate-high", "40",
         "--callers", "16", "--tail-s", "0.5", "--redis-s", "1",
         "--out", str(profile)],
        env=stack_env(served, ray_session, out), cwd=ROOT, capture_output=True, text=True,
        timeout=240, check=False,
    )  # fmt: skip
    (out / "stderr.txt").write_text(done.stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == profile.read_text().strip()  # the result on stdout
    assert "[11/11] poll_vote" in done.stderr  # progress on stderr
    assert "[11/11 high] poll_vote" in done.stderr  # and the second rate's
    assert "[redis] the shop's Redis commands from 1, 8, 64 concurrent clients" in done.stderr
    return profile


def test_measure_costs_every_class_in_its_own_apps_replicas(measured: Path) -> None:
    profile = parse_profile(measured.read_text())  # the version and every class checked
    assert set(profile.classes) == set(k.CLASSES)
    for cls, cost in profile.classes.items():
        assert cost.requests > 0 and cost.errors == 0, cls
        assert cost.shop_cpu_us() > 0, cls
        own = [r for r in cost.cpu_us if r.startswith(f"{k.REPLICA}{k.APP[cls]}")]
        assert own and all(cost.cpu_us[r] > 0 for r in own), (cls, cost.cpu_us)
        assert all(k.reachable(cls, r) for r in cost.cpu_us), (cls, cost.cpu_us)
        assert cost.latency.p50_ms > 0
    # A second rate for each class, or the reason it has none on stderr (too dear for this
    # machine at 40/s, answered badly there, or in need of what such a class makes); the
    # cheapest class always has one.
    log = (measured.parent / "stderr.txt").read_text()
    high_lines = [line for line in log.splitlines() if " high] " in line]
    assert profile.version == VERSION
    for cls, cost in profile.classes.items():
        if cost.high is None:
            assert any(f"high] {cls}: one rate only" in x for x in high_lines), (cls, log)
        else:
            assert cost.high.rate_per_s > cost.rate_per_s and cost.high.errors <= 2, cls
            assert all(k.reachable(cls, r) for r in cost.high.cpu_us), (cls, cost.high)
    assert profile.classes[k.AVAILABILITY].high is not None, high_lines
    # The mixed phase: each scenario's own mix, costing only roles its classes reach.
    assert "[mix 2/2] flash_sale" in log
    for name in ("steady", "flash_sale"):
        mixed = profile.mixes.get(name)
        if mixed is None:
            assert f"] {name}: not kept" in log, log
            continue
        assert abs(sum(mixed.shares.values()) - 1) < 1e-3 and mixed.cost.shop_cpu_us() > 0
        assert all(any(k.reachable(c, r) for c in mixed.shares) for r in mixed.cost.cpu_us)
    # Writes reach PostgreSQL; the ceiling of one shard on one hot SKU was found.
    assert profile.classes[k.CHECKOUT].pg_write_xacts > 0
    assert profile.classes[k.ADD].pg_wal_bytes > 0
    hot = profile.hot_shard
    assert hot.reserves > 0 and hot.shard_cpu_us > 0 and hot.cpu_ceiling_per_s > 0
    assert profile.machine.cores == os.cpu_count()
    assert profile.software.ray == "2.60.0" and profile.software.settings["shards"] >= 1
    assert profile.idle.seconds > 0 and profile.processes.count
    # Redis driven busy through the shop's code, on the stack's own Redis.
    busy = profile.redis_busy
    assert busy is not None and [x.clients for x in busy.levels] == [1, 8, 64]
    assert all(x.commands > 0 and x.cpu_us_per_cmd > 0 for x in busy.levels)
    assert "evalsha" in busy.mix and busy.ceiling_cmds_per_s > 0


def plan_of(profile: Path, users: int, out: Path) -> dict[str, Any]:
    args = ["capacity", "plan", "--profile", str(profile), "--scenario", "matchday",
            "--peak-users", str(users), "--node-cores", "16", "--node-memory", "64Gi",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    plan: dict[str, Any] = json.loads((out / "plan.json").read_text())
    return plan


def needs(plan: dict[str, Any]) -> dict[str, float]:
    out = {f"nodes {key}": plan["nodes"][key] for key in ("at_peak", "min", "max")}
    out |= {f"shards {key}": plan["shards"][key] for key in ("ring", "dedicated")}
    out["primaries"] = plan["stores"]["primaries_needed"]
    out["commits/s"] = plan["stores"]["pg_write_xacts_per_s"]
    out["redis/s"] = plan["stores"]["redis_cmds_per_s"]
    for d in plan["deployments"]:
        out |= {f"{d['role']} {key}": d[key] for key in ("replicas_at_peak", "max_replicas")}
    return out


def test_a_plan_for_twice_the_users_needs_at_least_as_much_of_everything(
    measured: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", os.environ.get("RAY_AUTH_MODE", "disabled"))
    one = plan_of(measured, 20_000, tmp_path / "one")
    two = plan_of(measured, 40_000, tmp_path / "two")
    before, after = needs(one), needs(two)
    assert set(before) <= set(after)
    assert all(after[key] >= value for key, value in before.items()), (before, after)
    assert two["requests_per_s"][k.BROWSE] > one["requests_per_s"][k.BROWSE] > 0
    for name in ("report.md", "demand.png", "load.png", "serve_config.yaml",
                 "rayservice-patch.yaml"):  # fmt: skip
        assert (tmp_path / "two" / name).stat().st_size > 0
    assert Profile.model_validate_json(measured.read_text()).classes  # still a valid profile
    report = (tmp_path / "two" / "report.md").read_text()
    assert "## Cost with the rate" in report
    assert "its cost per command from the busy-Redis phase" in report


def test_the_busy_redis_phase_leaves_nothing_in_the_stacks_redis(
    measured: Path, served: Served
) -> None:
    import redis

    client = redis.Redis.from_url(served.settings.redis_url)
    try:
        assert not list(client.scan_iter(match="matchday:capacity:busy*", count=1000))
    finally:
        client.close()
