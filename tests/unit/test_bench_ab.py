"""bench.ab: two commits' benchmark rounds interleaved, and their medians side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import ab


def inventory_doc(engine_total: float, rate: float) -> dict[str, Any]:
    def system(total: float, r: float) -> dict[str, Any]:
        return {"reserves_per_s": r, "p99_ms": 6.0, "cpu_us_per_op_net": {
            "server total": total, "shards": total / 2, "postgres": total / 2}}  # fmt: skip

    return {"hot_sku": {"runs": [{"64": {
        "engine": system(engine_total, rate), "row_lock": system(700.0, 1_800.0),
        "batching": {"transactions": 10}}}]}}  # fmt: skip


def http_doc(total: float) -> dict[str, Any]:
    add = {"requests_per_s": 4_000.0, "p99_ms": 30.0,
           "cpu_us_per_op_net": {"server total": total, "replica:shop": 130.0}}  # fmt: skip
    return {"runs": [{"phases": {"16": {"matchday/haproxy": add}}, "idle": {}}]}


def test_a_rounds_figures_are_its_rate_p99_and_cpu_by_role_for_each_system() -> None:
    got = ab.figures("inventory", inventory_doc(31.5, 23_000.0))
    assert set(got) == {("64", "engine"), ("64", "row_lock")}  # not the batching counters
    assert got[("64", "engine")] == {
        "rate": 23_000.0, "p99 ms": 6.0, "server total": 31.5, "shards": 15.75,
        "postgres": 15.75,
    }  # fmt: skip
    assert ab.figures("http", http_doc(262.0))[("16", "matchday/haproxy")]["server total"] == 262.0


def test_the_summary_gives_each_sides_median_and_their_ratio() -> None:
    a = [ab.figures("inventory", inventory_doc(t, 22_000.0)) for t in (33.2, 33.6, 33.5)]
    b = [ab.figures("inventory", inventory_doc(t, 23_400.0)) for t in (31.5, 32.5, 31.2)]
    lines = ab.summary("inventory", a, b)
    engine = lines[lines.index("c=64 engine:") + 1 : lines.index("c=64 row_lock:")]
    total = next(line for line in engine if line.strip().startswith("server total µs"))
    assert "A       33.5" in total and "B       31.5" in total and "0.94x" in total
    assert engine[0].split()[0] == "reserves/s" and "23,400.0" in engine[0]
    assert engine[-1] == "  rounds' server total: A 33.2 33.6 33.5 | B 31.5 32.5 31.2"


def test_a_role_near_zero_on_both_sides_is_left_out() -> None:
    doc = inventory_doc(30.0, 1.0)
    doc["hot_sku"]["runs"][0]["64"]["engine"]["cpu_us_per_op_net"]["ray:gcs"] = 0.1
    rounds = [ab.figures("inventory", doc)]
    assert not any("ray:gcs" in line for line in ab.summary("inventory", rounds, rounds))
    assert any("shards" in line for line in ab.summary("inventory", rounds, rounds))


def test_only_what_every_round_measured_is_compared() -> None:
    full = ab.figures("inventory", inventory_doc(30.0, 1.0))
    partial = {k: v for k, v in full.items() if k[1] == "engine"}
    lines = ab.summary("inventory", [full, partial], [full])
    assert "c=64 engine:" in lines and "c=64 row_lock:" not in lines


def test_rounds_alternate_a_and_b_and_each_side_keeps_its_own(tmp_path: Path) -> None:
    trees = (tmp_path / "a", tmp_path / "b")
    order = []

    def run(tree: Path, out: Path) -> None:
        order.append((tree.name, out.name))
        total = 33.0 if tree == trees[0] else 31.0
        out.write_text(json.dumps(inventory_doc(total + len(order) / 10, 1.0)))

    said: list[str] = []
    a, b = ab.interleave("inventory", trees, 2, tmp_path, run, said.append)
    assert order == [("a", "A1.json"), ("b", "B1.json"), ("a", "A2.json"), ("b", "B2.json")]
    assert [r[("64", "engine")]["server total"] for r in a] == [33.1, 33.3]
    assert [r[("64", "engine")]["server total"] for r in b] == [31.2, 31.4]
    assert any("round 2 of 2, B" in line for line in said)


def test_a_failed_round_stops_with_its_log(tmp_path: Path) -> None:
    run = ab.subprocess_round("no_such_bench", [])
    with pytest.raises(RuntimeError, match="a round failed"):
        run(ab.REPO, tmp_path / "A1.json")
    assert "No module named" in (tmp_path / "A1.log").read_text()


def test_a_worktree_of_a_commit_is_made_and_removed() -> None:
    with ab.worktree("HEAD") as tree:
        assert (tree / "bench" / "inventory").is_dir()
    assert not tree.exists()
