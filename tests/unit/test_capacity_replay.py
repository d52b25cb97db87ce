"""``matchday capacity validate --replay``: an earlier run re-predicted by this matchday's model,
from a one-rate (schema 1) or a two-rate (schema 2) profile, without sending any load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cluster.cli import main
from tests.unit.capacity_cases import profile_data, two_rate_profile

STEPS = [
    {"users": 5, "rps": 40.0, "p99_ms": 20.0, "failures": 0, "requests": 800},
    {"users": 10, "rps": 70.0, "p99_ms": 900.0, "failures": 0, "requests": 1400},
]


def recorded_run(root: Path, profile_json: str) -> Path:
    """What an earlier ``validate --out`` left: its profile, Locust's calibration, steps."""
    (root / "steady" / "steps").mkdir(parents=True)
    (root / "profile.json").write_text(profile_json)
    calibration = [{"scenario": "steady", "locust_us_per_request": 2000.0}]
    (root / "validation.json").write_text(json.dumps(calibration))
    (root / "steady" / "steps" / "steps.json").write_text(json.dumps(STEPS))
    (root / "steady" / "steps" / "report.md").write_text("**Saturated at 10 users**\n")
    return root


def replay(run: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("MATCHDAY_DATA_DIR", str(out.parent / "data"))
    args = ["capacity", "validate", "--replay", str(run), "--scenarios", "steady",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    (result,) = json.loads((out / "validation.json").read_text())
    assert result["measured_rps"] == 70.0 and result["saturated"]
    assert "Cost with the rate" in (out / "steady" / "plan.md").read_text()
    return dict(result)


def test_a_one_rate_run_replays_as_before_and_a_two_rate_run_scales_its_roles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = recorded_run(tmp_path / "v1", json.dumps(profile_data(version=1)))
    one = replay(v1, tmp_path / "out-v1", monkeypatch)
    assert one["rate_factors"] == {}
    assert "one rate per class" in (tmp_path / "out-v1" / "validation.md").read_text()
    # The same costs in schema 2 without a second rate predict exactly the same.
    v2 = recorded_run(tmp_path / "v2", json.dumps(profile_data()))
    assert replay(v2, tmp_path / "out-v2", monkeypatch)["predicted_rps"] == one["predicted_rps"]
    # A second rate per class: the shop's replica is cheaper at its load, the ingress dearer.
    two = recorded_run(tmp_path / "two", two_rate_profile().to_json())
    got = replay(two, tmp_path / "out-two", monkeypatch)
    assert got["rate_factors"]["replica:shop"]
    assert all(f == pytest.approx(1.5) for f in got["rate_factors"]["haproxy"].values())
    assert got["predicted_rps"] != one["predicted_rps"]
    text = (tmp_path / "out-two" / "validation.md").read_text()
    assert "11 of 11 classes measured at two rates" in text and "- steady: haproxy (x1.50" in text
