"""A shard's metrics kept in process and flushed (matchday/metrics_buffer.py): the totals a
recorder sees after a flush are the ones it would have seen call by call."""

from __future__ import annotations

from matchday.inventory.wire import ERROR, RESERVATION, RESERVE
from matchday.metrics import (
    CHECKOUT_LATENCY,
    MUTATIONS,
    PINNED_AVAILABLE,
    RESERVATIONS,
    MemoryMetrics,
    record_batch,
)
from matchday.metrics_buffer import BufferedMetrics


def reserves(n: int, refused: int = 0) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    mutations = [(RESERVE, f"rq-{i}", "SKU-1", 1, "c", "u", 60.0) for i in range(n)]
    ok = (RESERVATION, "r1", "SKU-1", 1, "c", "u", 60.0, "held", None)
    no = (ERROR, "out_of_stock", ("SKU-1", 1, 0))
    return mutations, [ok] * (n - refused) + [no] * refused


def test_a_flush_records_the_same_totals_as_recording_each_batch() -> None:
    direct, inner = MemoryMetrics(), MemoryMetrics()
    buffered = BufferedMetrics(inner)
    for m in (direct, buffered):
        for n, refused in ((64, 0), (10, 3), (64, 0)):
            mutations, outcomes = reserves(n, refused)
            record_batch(m, 2, mutations, outcomes, {"SKU-1": 500}, {"SKU-1": 400})
    assert inner.counters == {}  # nothing reaches the recorder before a flush
    buffered.flush()
    assert inner.counters == direct.counters
    assert inner.count(RESERVATIONS, outcome="ok") == 135
    assert inner.count(MUTATIONS, code="out_of_stock") == 3


def test_a_gauge_keeps_its_last_value_and_a_flush_starts_again_from_nothing() -> None:
    inner = MemoryMetrics()
    buffered = BufferedMetrics(inner)
    for units in (9, 7, 4):
        buffered.set(PINNED_AVAILABLE, units, {"shard": "2", "sku": "HOT"})
    buffered.inc(RESERVATIONS, 5, {"shard": "2", "outcome": "ok", "code": "ok"})
    buffered.inc(RESERVATIONS, 1, {"code": "ok", "outcome": "ok", "shard": "2"})  # reordered
    buffered.flush()
    assert inner.gauges == {(PINNED_AVAILABLE, (("shard", "2"), ("sku", "HOT"))): 4}
    assert inner.count(RESERVATIONS) == 6
    buffered.flush()  # nothing new: nothing recorded again
    assert inner.count(RESERVATIONS) == 6
    buffered.inc(RESERVATIONS, 2, {"shard": "2", "outcome": "ok", "code": "ok"})
    buffered.flush()
    assert inner.count(RESERVATIONS) == 8


def test_an_observation_is_not_summable_so_it_goes_through_at_once() -> None:
    inner = MemoryMetrics()
    BufferedMetrics(inner).observe(CHECKOUT_LATENCY, 0.25, {"status": "paid"})
    assert inner.observations == {(CHECKOUT_LATENCY, (("status", "paid"),)): [0.25]}
