"""``matchday capacity plan``: its files, what they carry, and the input it refuses.

The Serve config must pass Serve's own schema; the RayService patch, merged as ``kubectl patch
--type merge`` does (RFC 7386), must leave a RayService that passes KubeRay's CRD schema.
Refused input exits 2 with a message on stderr and writes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.cli import main
from matchday.capacity import classes as k
from matchday.capacity.demand import IN_STOCK, demand
from matchday.capacity.deploy import rayservice_patch, serve_config
from matchday.capacity.plan import make_plan
from matchday.capacity.plan_model import Node, Options, Plan, Stores
from matchday.capacity.report import markdown
from tests.unit.capacity_cases import BROWSER, BUYER, profile, profile_data, steady_mix
from tests.unit.test_cluster_configs import PRODUCTION, rayservice, rayservice_errors

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as `kubectl patch --type merge` applies it."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def a_plan(**options: Any) -> Plan:
    d = demand(steady_mix((BROWSER, 3), (BUYER, 1)), 10_000, {}, state=IN_STOCK)
    return make_plan(profile(), d, Options(node=Node(4, 8), utilisation=0.5, **options))


def test_the_serve_config_carries_the_plan_and_passes_serves_schema() -> None:
    from ray.serve.schema import ServeDeploySchema

    base = yaml.safe_load(PRODUCTION.read_text())
    config = serve_config(base, a_plan())
    ServeDeploySchema(**config)
    deployments = {d["name"]: d for a in config["applications"] for d in a["deployments"]}
    catalog = deployments["Catalog"]["autoscaling_config"]
    # 3 replicas at the peak, up to 5; production's HA floor of 2 is kept.
    assert (catalog["min_replicas"], catalog["max_replicas"]) == (3, 5)
    shop = deployments["Shop"]["autoscaling_config"]
    assert (shop["min_replicas"], shop["max_replicas"]) == (2, 2)
    assert deployments["Payments"]["num_replicas"] == 2  # production's 2 >= the plan's 1
    # Admin carries no load in this scenario: exactly as production configures it.
    before = {d["name"]: d for a in base["applications"] for d in a["deployments"]}
    assert deployments["Admin"] == before["Admin"]


def test_the_rayservice_patch_leaves_a_valid_rayservice_sized_by_the_plan() -> None:
    from ray.serve.schema import ServeDeploySchema

    p = a_plan()
    text = yaml.safe_dump(serve_config(yaml.safe_load(PRODUCTION.read_text()), p))
    patched = merge_patch(rayservice(), rayservice_patch(rayservice(), text, p))
    assert rayservice_errors(patched) == []
    ServeDeploySchema(**yaml.safe_load(patched["spec"]["serveConfigV2"]))
    cluster = patched["spec"]["rayClusterConfig"]
    (group,) = cluster["workerGroupSpecs"]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (3, 3, 5)
    (worker,) = group["template"]["spec"]["containers"]
    assert worker["resources"]["limits"] == {"cpu": "4", "memory": "8Gi"}
    (head,) = cluster["headGroupSpec"]["template"]["spec"]["containers"]
    for container in (head, worker):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["MATCHDAY_SHARDS"] == "1" and env["MATCHDAY_DEDICATED_SHARDS"] == "2"
        assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"  # what was there stays
        assert container["image"] == "ghcr.io/matchday/matchday:2.60.0"
    # Untouched by the patch: the head's own resources and the operator's settings.
    assert head["resources"] == rayservice()["spec"]["rayClusterConfig"]["headGroupSpec"][
        "template"]["spec"]["containers"][0]["resources"]  # fmt: skip


def test_the_report_names_the_point_past_one_primary_only_when_crossed() -> None:
    one = markdown(a_plan(), profile(), "steady")
    assert "one primary is enough" in one and "0024" not in one
    two = markdown(a_plan(stores=Stores(pg_cores=1.0)), profile(), "steady")
    assert "crosses the point where one PostgreSQL primary is enough" in two
    assert "0024-past-one-postgresql-primary.md" in two and "2 shard groups" in two
    assert "orders and payments by customer" in two
    for section in ("## Demand", "## Deployments", "## Shards", "## Nodes",
                    "## What saturates first", "matchday pin JERSEY-FINAL-LTD-M"):  # fmt: skip
        assert section in one


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    # main() defaults these for joining a running stack; keep them out of the test session.
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setenv("MATCHDAY_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "profile.json"
    path.write_text(profile().to_json())
    return path


def plan_args(profile_path: Path, out: Path, *extra: str, **flags: str) -> list[str]:
    """``capacity plan`` for kickoff at 5,000 users; ``flags`` replace or add options."""
    chosen = {"--scenario": "kickoff", "--peak-users": "5000"}
    chosen.update({f"--{name.replace('_', '-')}": v for name, v in flags.items()})
    pairs = [x for flag, value in chosen.items() for x in (flag, value)]
    return ["capacity", "plan", "--profile", str(profile_path), *pairs, "--out", str(out),
            *extra]  # fmt: skip


def test_plan_writes_the_report_charts_and_configs(
    cli: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plan"
    assert main(plan_args(cli, out, "--add", f"{k.POLL_VOTE}=300")) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "demand.png", "load.png", "plan.json", "rayservice-patch.yaml", "report.md",
        "serve_config.yaml",
    ]  # fmt: skip
    for chart in ("demand.png", "load.png"):
        assert (out / chart).read_bytes()[:8] == PNG
    plan = json.loads((out / "plan.json").read_text())
    assert plan["requests_per_s"][k.POLL_VOTE] == pytest.approx(300)
    assert any(d["role"] == "replica:polls" for d in plan["deployments"])
    captured = capsys.readouterr()
    assert "kickoff at 5,000 users" in captured.out and "first to saturate" in captured.out
    assert "wrote" in captured.err  # progress on stderr, the result on stdout


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"profile_version": 0}, "older than this matchday's"),
        ({"scenario": "final"}, "no scenario 'final'"),
        ({"peak_users": "0"}, "positive"),
        ({"peak_users": "-20"}, "positive"),
        ({"node_cores": "0.5"}, "cannot host one replica"),
        ({"node_memory": "512Mi"}, "cannot host one replica"),
        ({"node_memory": "lots"}, "write it like 16Gi"),
        ({"target_utilisation": "1.5"}, "utilisation"),
        ({"add": "teleport=5"}, "--add needs CLASS=RATE"),
        ({"missing_profile": True}, "cannot read the profile"),
        ({"pg_cores": "0"}, "--pg-cores must be above 0"),
        ({"pg_cores": "-4"}, "--pg-cores must be above 0, not -4"),
        ({"pg_wal_mbs": "0"}, "--pg-wal-mbs must be above 0"),
        ({"pg_wal_mbs": "nan"}, "--pg-wal-mbs must be a finite number"),
        ({"node_cores": "inf"}, "--node-cores must be a finite number"),
        ({"node_cores": "nan"}, "--node-cores must be a finite number"),
        ({"node_memory": "9" * 400}, "node memory must be a positive finite number"),
        ({"target_utilisation": "nan"}, "utilisation"),
        ({"think_scale": "nan"}, "--think-scale must be a finite number"),
        ({"think_scale": "-1"}, "--think-scale must be at least 0"),
        ({"drop_units": "-3"}, "--drop-units must be at least 1"),
        ({"drop_units": "0"}, "--drop-units must be at least 1"),
        ({"nodes": "0"}, "--nodes must be at least 1"),
        ({"peak_users": str(10**21)}, "--peak-users must be a positive number up to"),
        ({"hot_skus": ""}, "--hot-skus '' is not a SKU"),
        ({"hot_skus": "JERSEY/M"}, "is not a SKU"),
        ({"hot_skus": "A" * 65}, "is not a SKU"),
        ({"add": f"{k.POLL_VOTE}=nan"}, "the rate must be a finite number"),
        ({"add": f"{k.POLL_VOTE}=inf"}, "the rate must be a finite number"),
        ({"add": f"{k.POLL_VOTE}=-1"}, "the rate must be a finite number"),
        ({"out_is_file": True}, "exists and is not a directory"),
        ({"out_under_file": True}, "is not a directory"),
    ],
    ids=["old-profile", "scenario", "zero-users", "negative-users", "tiny-node-cores",
         "tiny-node-memory", "memory-typo", "utilisation", "unknown-class", "no-profile",
         "zero-pg-cores", "negative-pg-cores", "zero-pg-wal", "nan-pg-wal", "inf-node-cores",
         "nan-node-cores", "inf-node-memory", "nan-utilisation", "nan-think", "negative-think",
         "negative-drop", "zero-drop", "zero-nodes", "huge-users", "empty-sku", "slash-sku",
         "long-sku", "nan-add", "inf-add", "negative-add", "out-is-a-file",
         "out-under-a-file"],
)  # fmt: skip
def test_refused_input_exits_2_and_writes_nothing(
    cli: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any],
    complaint: str,
) -> None:  # fmt: skip
    flags = dict(change)
    if "profile_version" in flags:
        cli.write_text(json.dumps(profile_data(version=flags.pop("profile_version"))))
    if flags.pop("missing_profile", False):
        cli.unlink()
    out = tmp_path / "plan"
    blocker = None
    if flags.pop("out_is_file", False):
        blocker = out
    if flags.pop("out_under_file", False):
        blocker, out = out, out / "inside"
    if blocker is not None:
        blocker.write_text("a planner's notes\n")
    assert main(plan_args(cli, out, **flags)) == 2
    err = capsys.readouterr().err
    assert complaint in err
    # One line, the command's own: no traceback, no argparse usage.
    assert err.startswith("matchday capacity plan: ") and err.count("\n") == 1, err
    if blocker is not None:
        assert blocker.read_text() == "a planner's notes\n"
    else:
        assert not out.exists()
    assert not (tmp_path / "data").exists()
    assert not list(tmp_path.glob(".plan.tmp-*"))


def measure_and_validate_args(cli: Path, out: Path) -> dict[str, list[str]]:
    # The unreachable host proves the flags are refused before anything is contacted.
    host = ["--host", "http://127.0.0.1:9"]
    return {
        "measure": ["capacity", "measure", *host],
        "validate": ["capacity", "validate", "--profile", str(cli), *host, "--scenarios",
                     "steady", "--out", str(out)],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("command", "flags", "complaint"),
    [
        ("measure", ["--rate", "nan"], "--rate must be a finite number"),
        ("measure", ["--rate", "0"], "--rate must be above 0"),
        ("measure", ["--rate", "-40"], "--rate must be above 0"),
        ("measure", ["--phase-s", "inf"], "--phase-s must be a finite number"),
        ("measure", ["--phase-s", "0"], "--phase-s must be above 0"),
        ("measure", ["--rate-high", "nan"], "--rate-high must be a finite number"),
        ("measure", ["--rate-high", "-1"], "--rate-high must be at least 0"),
        ("measure", ["--rate-high", "20"], "--rate-high must be above --rate"),
        ("measure", ["--callers", "0"], "--callers must be at least 1"),
        ("measure", ["--tail-s", "-1"], "--tail-s must be at least 0"),
        ("measure", ["--tail-s", "nan"], "--tail-s must be a finite number"),
        ("measure", ["--mix-think", "nan"], "--mix-think must be a finite number"),
        ("measure", ["--stack-pid", "0"], "--stack-pid must be at least 1"),
        ("measure", ["--out", "{tmp}"], "is a directory"),
        ("measure", ["--out", "{tmp}/no/such/dir/profile.json"], "no directory"),
        ("validate", ["--users", "5", "0"], "--users must be at least 1"),
        ("validate", ["--users", "-5"], "--users must be at least 1"),
        ("validate", ["--step-s", "0"], "--step-s must be above 0"),
        ("validate", ["--step-s", "inf"], "--step-s must be a finite number"),
        ("validate", ["--ramp-s", "nan"], "--ramp-s must be a finite number"),
        ("validate", ["--calibrate-s", "-10"], "--calibrate-s must be above 0"),
        ("validate", ["--phase-s", "nan"], "--phase-s must be a finite number"),
        ("validate", ["--rate", "inf"], "--rate must be a finite number"),
        ("validate", ["--callers", "-1"], "--callers must be at least 1"),
        ("validate", ["--think-scale", "nan"], "--think-scale must be a finite number"),
        ("validate", ["--hot-skus", "bad sku"], "is not a SKU"),
    ],
)  # fmt: skip
def test_measure_and_validate_refuse_bad_numbers_before_any_load(
    cli: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str,
    flags: list[str], complaint: str,
) -> None:  # fmt: skip
    out = tmp_path / "validate"
    args = measure_and_validate_args(cli, out)[command]
    args += [f.replace("{tmp}", str(tmp_path)) for f in flags]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(args) == 2
    err = capsys.readouterr().err
    assert complaint in err
    assert err.startswith(f"matchday capacity {command}: ") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_validate_refuses_an_out_that_is_a_file(
    cli: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "validate"
    out.write_text("kept\n")
    assert main(measure_and_validate_args(cli, out)["validate"]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err
    assert out.read_text() == "kept\n"


def test_the_installed_command_exits_non_zero_on_an_old_profile(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps(profile_data(version=0)))
    done = subprocess.run(
        [sys.executable, "-m", "cluster.cli", *plan_args(old, tmp_path / "plan")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "measure again" in done.stderr and done.stdout == ""
    assert not (tmp_path / "plan").exists()


def test_memory_is_read_in_the_units_nodes_are_sold_in() -> None:
    from cluster.capacity_common import parse_memory_gib

    assert parse_memory_gib("16Gi") == parse_memory_gib("16GiB") == parse_memory_gib("16") == 16
    assert parse_memory_gib("512Mi") == 0.5 and parse_memory_gib("1Ti") == 1024


def test_an_installed_matchday_carries_the_files_plan_starts_from() -> None:
    import fnmatch
    import tomllib

    from cluster import capacity_common

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = data["tool"]["setuptools"]["package-data"]["cluster"]
    for path in (capacity_common.BASE_CONFIG, capacity_common.RAYSERVICE):
        inside = str(path.relative_to(ROOT / "cluster"))
        assert any(fnmatch.fnmatch(inside, g) for g in globs), inside


def test_the_report_says_when_a_plan_leaves_rays_tested_envelope() -> None:
    assert "Past Ray's tested envelope" not in markdown(a_plan(), profile(), "steady")
    big = markdown(a_plan(fixed_nodes=300), profile(), "steady")
    assert "Past Ray's tested envelope**: 300 nodes" in big


def test_validate_refuses_an_unknown_scenario_before_sending_any_load(
    cli: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "validate"
    args = ["capacity", "validate", "--profile", str(cli), "--scenarios", "steady", "final",
            "--host", "http://127.0.0.1:9", "--out", str(out)]  # fmt: skip
    assert main(args) == 2
    assert "no scenario 'final'" in capsys.readouterr().err
    assert not out.exists()


def test_validate_replays_an_earlier_run_against_the_model_without_sending_load(
    cli: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    # An earlier run: its profile, Locust's calibration, and steps that saturated at 100/s.
    earlier = tmp_path / "earlier"
    steps_dir = earlier / "steady" / "steps"
    steps_dir.mkdir(parents=True)
    (earlier / "profile.json").write_text(cli.read_text())
    calibration = [{"scenario": "steady", "locust_us_per_request": 1000.0}]
    (earlier / "validation.json").write_text(json.dumps(calibration))
    steps = [
        {"users": 5, "rps": 60.0, "p99_ms": 50.0, "requests": 600, "failures": 0},
        {"users": 10, "rps": 100.0, "p99_ms": 900.0, "requests": 1000, "failures": 0},
    ]
    (steps_dir / "steps.json").write_text(json.dumps(steps))
    (steps_dir / "report.md").write_text("**Saturated at 10 users**\n")
    out = tmp_path / "replayed"
    # The unreachable host proves nothing is sent: a measurement would fail on it.
    args = ["capacity", "validate", "--replay", str(earlier), "--scenarios", "steady",
            "--host", "http://127.0.0.1:9", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    (result,) = json.loads((out / "validation.json").read_text())
    assert result["measured_rps"] == 100.0 and result["saturated"]
    assert result["locust_us_per_request"] == 1000.0
    assert result["error"] == pytest.approx(result["predicted_rps"] / 100.0 - 1)
    assert "Replayed" in (out / "validation.md").read_text()
    assert "steady: predicted" in capsys.readouterr().out
    # A directory with no run of the scenario is refused, nothing written.
    assert main([*args[:3], str(tmp_path / "nothing"), *args[4:-1], str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_the_report_names_the_redis_split_only_when_redis_passes_its_share() -> None:
    quiet = a_plan()
    assert quiet.stores.redis_cores <= quiet.options.utilisation
    assert "past 50% of its one core" not in markdown(quiet, profile(), "steady")
    busy = replace(quiet, stores=replace(quiet.stores, redis_cores=0.9))
    text = markdown(busy, profile(), "steady")
    assert "This scenario takes Redis past 50% of its one core" in text
    assert "0.90 cores at the peak" in text and "0024-past-one-postgresql-primary.md" in text
