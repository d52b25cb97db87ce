"""A measured window becomes a cost per request, net of the idle burn (worked by hand)."""

from __future__ import annotations

import pytest

from matchday.capacity import classes as k
from matchday.capacity.costs import Window, class_cost, idle_of, percentile


def test_costs_are_what_the_phase_used_beyond_idle_per_answered_request() -> None:
    # Idle for 10 s: the shop replica burns 0.01 core, Ray's GCS 0.05; PostgreSQL writes
    # 1 transaction and 1 kB of WAL a second; Redis runs 5 commands a second (+ our INFO).
    idle = idle_of(Window(10.0, {"replica:shop": 0.1, "ray:gcs": 0.5}, 10, 10_000, 51))
    assert idle.cores == {"replica:shop": 0.01, "ray:gcs": 0.05}
    assert idle.redis_cmds_per_s == pytest.approx(5.0)
    # A 4 s phase answered 200 adds: the replica used 0.14 s (0.04 of it idle burn): 500 us
    # each; the GCS used exactly its idle burn: nothing; shards 0.04 s: 200 us.
    phase = Window(4.0, {"replica:shop": 0.14, "ray:gcs": 0.2, "shards": 0.04},
                   pg_write_xacts=104, pg_wal_bytes=404_000, redis_cmds=221)  # fmt: skip
    cost = class_cost(phase, idle, ok=200, errors=3, rate_per_s=50.0,
                      latencies_ms=[10.0] * 99 + [30.0])  # fmt: skip
    assert cost.cpu_us == {"replica:shop": pytest.approx(500), "shards": pytest.approx(200)}
    # (104 - 4) / 200 transactions; (404,000 - 4,000) / 200 bytes; (221 - 1 - 20) / 200.
    assert cost.pg_write_xacts == pytest.approx(0.5)
    assert cost.pg_wal_bytes == pytest.approx(2000)
    assert cost.redis_cmds == pytest.approx(1.0)
    assert cost.latency.mean_ms == pytest.approx(10.2)
    assert (cost.latency.p50_ms, cost.latency.p99_ms) == (10.0, 10.0)
    assert cost.errors == 3 and cost.requests == 200


def test_a_role_quieter_than_idle_costs_nothing_rather_than_less_than_nothing() -> None:
    idle = idle_of(Window(10.0, {"ray:gcs": 1.0}))
    cost = class_cost(Window(1.0, {"ray:gcs": 0.05, "haproxy": 0.01}), idle, ok=10, errors=0,
                      rate_per_s=10.0, latencies_ms=[1.0])  # fmt: skip
    assert cost.cpu_us == {"haproxy": pytest.approx(1000)}


def test_a_phase_with_no_answered_request_has_no_cost() -> None:
    idle = idle_of(Window(1.0, {}))
    with pytest.raises(ValueError, match="no request"):
        class_cost(Window(1.0, {}), idle, ok=0, errors=5, rate_per_s=1, latencies_ms=[])


def test_percentiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0, 99.0, 100.0)  # fmt: skip
    assert percentile([], 99) == 0.0


def test_cpu_a_class_cannot_cause_is_left_out_of_its_cost() -> None:
    idle = idle_of(Window(10.0, {}))
    # Browsing: the catalog replica works; a tick on the shop replica and the payments
    # worker in the same window is their own business (a health check, a poll).
    w = Window(2.0, {"replica:catalog": 0.1, "replica:shop": 0.02, "ray:payments worker": 0.02,
                     "redis": 0.02, "haproxy": 0.005})  # fmt: skip
    cost = class_cost(w, idle, ok=100, errors=0, rate_per_s=50, latencies_ms=[1.0],
                      cls=k.BROWSE)  # fmt: skip
    # The ingress's 5 ms is under one 10 ms clock tick: not distinguishable from idle.
    assert cost.cpu_us == {"replica:catalog": pytest.approx(1000), "redis": pytest.approx(200)}
    checkout = class_cost(w, idle, ok=100, errors=0, rate_per_s=50, latencies_ms=[1.0],
                          cls=k.CHECKOUT)  # fmt: skip
    assert "ray:payments worker" in checkout.cpu_us and "replica:catalog" not in checkout.cpu_us


def test_which_roles_each_class_can_reach() -> None:
    assert k.reachable(k.ADD, "replica:shop") and not k.reachable(k.ADD, "replica:orders")
    assert k.reachable(k.CHECKOUT, "replica:orders/Payments")
    assert k.reachable(k.POLL_VOTE, "replica:polls") and k.reachable(k.POLL_VOTE, "postgres")
    assert not k.reachable(k.ADD, k.PAYMENTS_WORKER_ROLE)
    # Ray's control plane does no work per request (replicas call shards worker to worker):
    # its burn is per node, from the idle window, never a class's. Its proxy is the ingress.
    for role in ("ray:gcs", "ray:raylet", "ray:controller", "ray:dashboard", "ray:other"):
        assert not k.reachable(k.ADD, role) and not k.reachable(k.CHECKOUT, role)
    assert k.reachable(k.ADD, "ray:proxy") and k.reachable(k.ADD, "ray:publisher")


def test_a_burst_in_part_of_the_idle_window_is_not_charged_to_every_phase() -> None:
    # Five idle seconds: autovacuum writes 500 kB of WAL and an expiry sweep runs 300 Redis
    # commands in one of them; otherwise 1 kB and 5 commands a second (+ our INFO each).
    quiet = Window(1.0, {"shards": 0.01}, 1, 1_000, 6)
    burst = Window(1.0, {"shards": 0.06}, 2, 500_000, 301)
    idle = idle_of(quiet, quiet, burst, quiet, quiet)
    assert idle.seconds == 5.0
    assert (idle.pg_wal_bytes_per_s, idle.redis_cmds_per_s) == (1_000, 5)
    assert idle.pg_write_xacts_per_s == 1
    assert idle.cores == {"shards": pytest.approx(0.02)}  # CPU: the mean, burst included
    # A 2 s phase of 40 adds still shows its writes (the whole window's mean would have
    # charged it 100 kB/s of idle WAL: nothing left).
    add = Window(2.0, {"shards": 0.1}, 60, 122_000, 91)
    cost = class_cost(add, idle, ok=40, errors=0, rate_per_s=20, latencies_ms=[1.0])
    assert cost.pg_wal_bytes == pytest.approx(3000)
    assert cost.redis_cmds == pytest.approx(2.0)


def test_an_idle_window_needs_a_duration() -> None:
    with pytest.raises(ValueError, match="duration"):
        idle_of()
    with pytest.raises(ValueError, match="duration"):
        idle_of(Window(1.0, {}), Window(0.0, {}))
