"""CPU accounting by role (matchday.ops.cpu_roles): classification and the arithmetic, with
hand-computed cases. The sampling itself runs against real processes in the bench smoke
tests (tests/integration/test_bench_*smoke.py)."""

from __future__ import annotations

import os

import pytest

from matchday.ops.cpu_roles import (
    SERVER_TOTAL,
    TICK_S,
    CpuSample,
    cores_used,
    cpu_sample,
    cpu_seconds,
    idle_cores,
    net_of_idle,
    net_per_op_us,
    per_op_error_us,
    per_op_us,
    role,
    totals,
)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("ray::ServeReplica:shop:Shop", "replica:shop"),
        ("ray::ServeReplica:shop:Shop.handle_request", "replica:shop"),
        ("ray::ServeReplica:orders:Payments", "replica:orders/Payments"),
        ("ray::InventoryShard", "shards"),
        ("ray::InventoryShard.apply_batch", "shards"),
        ("ray::EventPublisher", "ray:publisher"),
        ("ray::ServeController", "ray:controller"),
        ("ray::ProxyActor", "ray:proxy"),
        ("ray::HAProxyManager", "ray:proxy"),
        ("ray::DashboardAgent", "ray:dashboard"),
        ("ray-dashboard-ReportHead-0 (/usr/bin/python3 -m x)", "ray:dashboard"),
        ("/v/bin/python -u /v/lib/ray/dashboard/dashboard.py --host=127.0.0.1", "ray:dashboard"),
        ("gcs_server", "ray:gcs"),
        ("raylet", "ray:raylet"),
        ("haproxy", "haproxy"),
        ("postgres", "postgres"),
        ("redis-server", "redis"),
        ("ray::IDLE", "ray:other"),
        ("ray::PaymentsWorkerActor", "ray:other"),
        ("/v/bin/python -m cluster.cli run --no-seed", "ray:other"),
    ],
)
def test_every_process_title_maps_to_its_role(title: str, expected: str) -> None:
    assert role(title) == expected


def sample(at: float, busy: float, steal: float, **procs: tuple[str, float]) -> CpuSample:
    """Processes named p<pid>_<start time>, e.g. p7_1=("shards", 2.0)."""
    keyed = {}
    for name, value in procs.items():
        pid, start = name[1:].split("_")
        keyed[(int(pid), float(start))] = value
    return CpuSample(at, keyed, busy, steal)


BEFORE = sample(10.0, 100.0, 1.0, p1_100=("shards", 5.0), p2_1=("postgres", 1.0),
                p4_1=("redis", 9.0))  # fmt: skip
AFTER = sample(
    12.0, 103.0, 1.2,
    p1_100=("shards", 6.0),  # +1.0
    p2_1=("postgres", 1.5),  # +0.5
    p3_50=("ray:gcs", 0.2),  # born in the window: from 0
    p4_2=("redis", 0.3),  # pid 4 reused by a new process: its own 0.3, not 0.3 - 9.0
)  # fmt: skip


def test_cpu_seconds_per_role_counts_new_processes_from_zero_and_tells_reused_pids_apart() -> None:
    assert cpu_seconds(BEFORE, AFTER) == pytest.approx(
        {"shards": 1.0, "postgres": 0.5, "ray:gcs": 0.2, "redis": 0.3}
    )


def test_cores_used_divides_by_the_window_and_splits_off_foreign_load() -> None:
    cores = cores_used(BEFORE, AFTER)
    assert cores["shards"] == pytest.approx(0.5)  # 1.0 s over 2 s
    assert cores["postgres"] == pytest.approx(0.25)
    assert cores["machine"] == pytest.approx(1.5)  # 3.0 busy seconds over 2 s
    assert cores["foreign"] == pytest.approx(0.5)  # 1.5 - (1.0 + 0.5 + 0.2 + 0.3) / 2
    assert cores["steal"] == pytest.approx(0.1)
    assert next(iter(cores)) == "shards"  # most first


def test_totals_group_ray_and_replicas_and_leave_the_load_generator_out_of_the_server() -> None:
    seconds = {"load generator": 0.5, "shards": 0.2, "postgres": 0.3, "ray:gcs": 0.01,
               "ray:raylet": 0.04, "replica:shop": 0.1, "replica:orders/X": 0.02}  # fmt: skip
    got = totals(seconds)
    assert got["ray"] == pytest.approx(0.05)
    assert got["replicas"] == pytest.approx(0.12)
    assert got[SERVER_TOTAL] == pytest.approx(0.67)  # everything but the 0.5 s


def test_per_op_divides_cpu_seconds_by_the_acknowledged_operations_in_microseconds() -> None:
    seconds = {"load generator": 0.5, "shards": 0.2, "postgres": 0.3, "replica:shop": 0.1}
    us = per_op_us(seconds, 1000)
    assert us["shards"] == 200.0
    assert us["load generator"] == 500.0
    assert us[SERVER_TOTAL] == 600.0
    assert us["ray"] == 0.0
    assert per_op_us(seconds, 0) == {}


def test_net_of_idle_subtracts_each_roles_idle_rate_over_the_window_never_below_zero() -> None:
    seconds = {"shards": 0.2, "ray:gcs": 0.01, "postgres": 0.3, "machine": 9.0}
    idle = {"shards": 0.05, "ray:gcs": 0.01, "ray": 0.01, SERVER_TOTAL: 0.06}
    net = net_of_idle(seconds, idle, 2.0)
    assert net == pytest.approx({"shards": 0.1, "ray:gcs": 0.0, "postgres": 0.3})
    # 0.4 s of work over 1,000 ops is 400 us each; gross would be 510 us.
    per_op = net_per_op_us(seconds, idle, 2.0, 1000)
    assert per_op[SERVER_TOTAL] == 400.0
    assert per_op["shards"] == 100.0


def test_idle_cores_are_cpu_seconds_per_second_with_the_aggregates() -> None:
    idle = idle_cores(BEFORE, AFTER)
    assert idle["shards"] == pytest.approx(0.5)
    assert idle["ray"] == pytest.approx(0.1)
    assert idle[SERVER_TOTAL] == pytest.approx(1.0)


def test_the_tick_resolution_error_shrinks_with_operations_and_grows_with_processes() -> None:
    six = {(pid, 0.0): ("shards", 1.0) for pid in range(6)}
    after = CpuSample(2.0, {**six, (9, 0.0): ("load generator", 1.0)}, 0.0, 0.0)
    before = CpuSample(0.0, {}, 0.0, 0.0)
    # Six shard processes: 3 * sqrt(6 / 6) ticks of 10 ms = 30 ms, over 100 ops = 300 us.
    assert TICK_S == 0.01  # Linux's USER_HZ
    error = per_op_error_us(before, after, 100)
    assert error["shards"] == 300.0
    assert error[SERVER_TOTAL] == 300.0  # the load generator is not the server
    assert per_op_error_us(before, after, 10_000)["shards"] == 3.0
    assert per_op_error_us(before, after, 0) == {}


def test_a_real_sample_labels_this_process_and_sees_its_cpu_grow() -> None:
    me = os.getpid()
    first = cpu_sample({"auto": me}, {me: "load generator"})
    sum(i * i for i in range(2_000_000))  # burn a little CPU
    second = cpu_sample({"auto": me}, {me: "load generator"})
    used = cpu_seconds(first, second)
    assert used["load generator"] > 0
    assert second.busy >= first.busy and second.at > first.at
